"""argparse from settings dataclasses: one flag per field, the default from the dataclass (shown
in ``--help``), choices from the field, and errors as one line with exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from safepce.tabular.errors import InputError
from safepce.theory.settings import choices_of, field_type, flag, positive, setting


class UsageError(InputError):
    """A command-line argument is out of range (reported as one line, exit code 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line (``safepce COMMAND: error: ...``) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _shown(value) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return "none" if value is None else str(value)


def add_settings(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of the settings dataclass ``cls``; argparse stores None for a flag
    not given, so the dataclass default applies (:func:`settings_from`)."""
    for f in fields(cls):
        if f.name in skip or "help" not in f.metadata:
            continue
        kind, many, _ = field_type(cls, f.name)
        default = f.default if f.default is not MISSING else None
        text = _escape(f.metadata["help"])
        if kind is bool:
            parser.add_argument(flag(f.name), action="store_true", default=None, help=text)
            continue
        shown = "" if "default" in text else f" (default: {_shown(default)})"
        options = {"type": kind, "default": None, "help": text + shown}
        choices = choices_of(f.metadata)
        if choices is not None:
            options["choices"] = list(choices)
            if len(choices) > 4:
                options["metavar"] = "NAME"
                options["help"] += f"; one of: {', '.join(choices)}"
        if many:
            options["nargs"] = "+"
        parser.add_argument(flag(f.name), **options)


def settings_from(cls, args: argparse.Namespace):
    """The settings dataclass ``cls`` from parsed arguments (flags not given keep defaults)."""
    given = {}
    for f in fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**given)


@dataclass(frozen=True)
class RunSettings:
    """How a command runs (not what it computes): output folder, workers, engine, progress."""

    out: str = setting("", "output folder")
    workers: int = setting(2, "worker processes", positive, "a positive integer")
    engine: str = setting("local", "local process pool, or Dask (safepce[dask])",
                          choices=("local", "dask"))
    scheduler: str | None = setting(None, "Dask scheduler address (default: a LocalCluster)")
    quiet: bool = setting(False, "no progress bars")
    verbose: bool = setting(False, "log what the library adjusts on its own (solver fallbacks, "
                                   "budget tightenings) to standard error")
    overwrite: bool = setting(False, "clear the output folder first (it may hold another "
                                     "command's or other settings' results)")


def add_run_flags(parser: argparse.ArgumentParser, command: str, names: tuple[str, ...]) -> None:
    """``--out`` (default results/COMMAND) and the named fields of :class:`RunSettings`."""
    parser.add_argument("--out", default=f"results/{command}",
                        help=f"output folder (default: results/{command})")
    names = (*names, "overwrite", "verbose")
    keep = tuple(f.name for f in fields(RunSettings) if f.name not in names or f.name == "out")
    add_settings(parser, RunSettings, skip=keep)


def run_settings(args: argparse.Namespace) -> RunSettings:
    from safepce.theory.settings import validate

    return validate(dataclasses.replace(settings_from(RunSettings, args), out=args.out))


def take_output(run: RunSettings, command: str, settings, keep: tuple[str, ...] = ()) -> Path:
    """Create and check the output folder, then claim it for this command and settings
    (:func:`safepce.theory.results.claim_output`: refuses another command's or settings' results
    unless --overwrite, which clears only a folder safepce wrote; removes stale outputs). The
    folder stays locked for this process until the command ends
    (:func:`safepce.theory.results.lock_output`)."""
    from safepce.theory.results import claim_output, lock_output, release_output

    out = prepare_output(run.out)
    created = lock_output(out, command)
    try:
        claim_output(out, command, dataclasses.asdict(settings), keep=keep,
                     overwrite=run.overwrite)
    except BaseException:
        release_output(out, remove=created)
        raise
    return out


def prepare_output(path: str | Path) -> Path:
    """Create the output folder (and parents) and check that it is writable."""
    if str(path) == "":
        raise UsageError("--out: expected a folder name; got an empty string")
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"--out: expected a writable folder; {out} is not ({exc.strerror})") from None
    return out
