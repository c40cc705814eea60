"""The whole ``safepce`` command line, at the top of the import flow (tabular <- theory <-
bounds): one table of commands, each with its settings dataclass (flags, defaults and ranges
come from its fields), the :class:`~safepce.bounds.cli.flags.RunSettings` flags it takes, and its
runner.

Bad input ends in one line on stderr (``safepce COMMAND: error: ...``) and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from safepce.console import STARTING, sigint_recorded, was_interrupted
from safepce.theory.experiment import ExperimentSettings, ViolationSettings
from safepce.theory.results import release_output
from safepce.theory.sweep import EngineError, tune_process

from ..claims import VerifySettings
from ..sweeps import SweepDeltaSettings
from . import commands
from .flags import OneLineParser, add_run_flags, add_settings, run_settings, settings_from


@dataclass(frozen=True)
class Command:
    name: str
    settings: type
    run: object
    run_flags: tuple[str, ...]
    help: str
    description: str


COMMANDS: tuple[Command, ...] = (
    Command("figure1", commands.Figure1Settings, commands.run_figure1, (),
            "solve the paper's gridworld exactly and draw its Figure 1",
            "Solve the 7x7 gridworld by the occupancy LP at each noise level and draw the "
            "optimal policies (the paper's Figure 1)."),
    Command("train", commands.TrainSettings, commands.run_train, ("quiet",),
            "run the training phase (Algorithm 1) on a task family",
            "Algorithm 1 with Subroutine 3 on a registered family (default: the paper's "
            "gridworld, noise ~ Normal(0.3, 0.03) clipped to [0, 0.5]), then Lemma 3.5's "
            "quantities on held-out tasks, computed exactly."),
    Command("reproduce", ExperimentSettings, commands.run_reproduce, ("workers", "quiet"),
            "the paper's experiment end to end (the main job)",
            "Training phase with the family's settings, then each test-time algorithm on the "
            "test tasks (the gridworld's ten published ones); writes Figures 1 and 2, runs.csv, "
            "curves.npz and summary.json."),
    Command("violations", ViolationSettings, commands.run_violations,
            ("workers", "engine", "scheduler", "quiet"),
            "fraction of runs with a violation, over test tasks drawn from D",
            "Runs each algorithm on --runs test tasks drawn from D with fresh seeds and reports "
            "the fraction of runs with any infeasible deployed policy, with a 95% "
            "Clopper-Pearson interval. Every finished run is stored in OUT/store; the same "
            "command resumes an interrupted sweep."),
    Command("sweep-delta", SweepDeltaSettings, commands.run_sweep_delta,
            ("workers", "engine", "scheduler", "quiet"),
            "violation rate against Algorithm 1's delta",
            "Retrain with each delta and measure the fraction of runs with a violation over "
            "test tasks drawn from D (95% Clopper-Pearson intervals); resumable."),
    Command("verify", VerifySettings, commands.run_verify,
            ("workers", "engine", "scheduler", "quiet"),
            "check the paper's lemmas and theorems numerically",
            "Lemma C.3, Lemma 3.5, Lemma 4.5 safety, Theorem 4.2's explicit regret bound where "
            "it can bind, Safe-PCE's sample complexity against Theorem 5.1 and App. E on the "
            "hard family in 1/eps, 1/xi, C and 1/(1-gamma) (sandwich.csv, sandwich_rates.csv, "
            "sandwich.png; its runs go to --engine), the hard family's properties and its lower "
            "bound's slopes, the scaled preset and the published experiment's safety claim. "
            "Each claim is passed, failed (a check of the toolkit), inconclusive (the data "
            "cannot decide) or refuted (a statement of the paper); the exit code is 1 when any "
            "check failed."),
)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="safepce",
        description="Constrained meta-RL with provable test-time safety (Ni & Kamgarpour 2026, "
                    "arXiv:2601.21845), checked exactly.")
    parser.add_argument("--version", action="version",
                        version=f"safepce {metadata.version('safepce')}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help,
                                    description=command.description)
        add_settings(sub, command.settings)
        add_run_flags(sub, command.name, command.run_flags)
        sub.set_defaults(command_spec=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line: one command, its one-line errors (exit 2) and its interrupt (exit 130,
    one line saying what was kept). A Ctrl-C is recognised whatever exception it surfaces as
    (:func:`safepce.console.was_interrupted`)."""
    with sigint_recorded():
        try:
            tune_process()
            args = build_parser().parse_args(argv)
        except BaseException as exc:
            if not was_interrupted(exc):
                raise
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print(STARTING, file=sys.stderr)
            return 130
        command: Command = args.command_spec
        try:
            settings = settings_from(command.settings, args)
            run = run_settings(args)
            if run.verbose:
                _log_to_stderr()
            return command.run(settings, run)
        except BaseException as exc:
            if was_interrupted(exc):
                # the pools have been ended on the way out; a second Ctrl-C must not break
                # the exit
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                print(f"safepce {command.name}: {interrupted_message(Path(args.out))}",
                      file=sys.stderr)
                return 130
            if isinstance(exc, ValueError):   # every InputError, and validation errors
                print(f"safepce {command.name}: error: {exc}", file=sys.stderr)
                return 2
            if isinstance(exc, (OSError, MemoryError)):
                print(f"safepce {command.name}: {fault_message(exc, Path(args.out))}",
                      file=sys.stderr)
                return 1
            raise
        finally:
            release_output()


def _log_to_stderr() -> None:
    """INFO records of the ``safepce`` loggers to standard error, one line each."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("safepce: %(name)s: %(message)s"))
    for name in ("safepce",):
        logger = logging.getLogger(name)
        if not any(getattr(h, "safepce_verbose", False) for h in logger.handlers):
            handler.safepce_verbose = True
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def console(argv: list[str] | None = None) -> int:
    """The ``safepce`` script and ``python -m safepce``: :func:`main`, and after an interrupt
    an immediate exit with code 130. Every pool has been ended and its workers reaped by then
    (``theory.sweep.end_pool``) and every stored result is on disk, so nothing is left for the
    interpreter's exit to do but joins that may wait (a pool's thread) and, when the interrupt
    surfaced inside an extension module's import, a re-raise of the signal (exit status -2
    instead of 130). (Not in :func:`main`, which tests and notebooks call in-process.)"""
    code = main(argv)
    if code == 130:
        _end_now(code)
    return code


def _end_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def fault_message(exc: BaseException, out: Path) -> str:
    """One line for an I/O fault or exhausted memory met while running: what failed, and that
    what was stored before it is kept (every file is written atomically)."""
    if isinstance(exc, MemoryError):
        what = "out of memory"
    elif isinstance(exc, EngineError):
        what = str(exc)
    else:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        what = f"I/O error: {exc.strerror or exc}{where}"
    return (f"{what}; results stored in {out} before it are intact; fix the cause and run the "
            "same command to resume")


def interrupted_message(out: Path) -> str:
    """What an interrupted command kept: the runs in its store (the same command resumes)."""
    stores = [out / "store", out / "store" / "runs", *sorted(out.glob("delta_*/store/runs")),
              *sorted(out.glob("store/*/"))]
    stored = sum(len(list(folder.glob("*.json"))) + len(list(folder.glob("*.npz")))
                 for folder in dict.fromkeys(stores) if folder.is_dir())
    if stored:
        return (f"interrupted: {stored} runs stored in {out}; run the same command to "
                "resume")
    return "interrupted: no run finished yet, nothing to resume from; run the same command again"


__all__ = ["COMMANDS", "Command", "build_parser", "console", "main"]
