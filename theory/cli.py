"""The ``safepce`` command line: the theory-side commands (figure1, train).

Every command writes into one output folder: a tidy CSV of per-run results, ``summary.json``
with the settings used, and the figures. Bad input ends in a one-line error and exit code 2.

The console script enters through :mod:`bounds.cli`, which sits above theory in the import flow
(tabular <- theory <- bounds), adds the bounds commands and passes ``hooks`` (such as the
covering-number function) down to these runners.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

import tabular

#: constrained optima of the gridworld in PAPER.md section 7 (cost 1.5 active in all)
PAPER_GRIDWORLD_OPTIMA = {0.1: 59.73693, 0.2: 56.43349, 0.3: 51.96282, 0.4: 44.91545}


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors as one line (``safepce COMMAND: error: ...``) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class UsageError(ValueError):
    """A command-line argument is out of range (reported as one line, exit code 2)."""


def prepare_output(path: str | Path) -> Path:
    """Create the output folder (and parents) and check that it is writable."""
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


def versions() -> dict[str, str]:
    names = ("safepce", "numpy", "numba", "scipy", "cvxpy-base", "highspy")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (a crash leaves either the old file or the new one)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)


def write_table(path: Path, rows: list[dict]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)


# --- figure1 ----------------------------------------------------------------------------------


def run_figure1(args: argparse.Namespace) -> int:
    """Solve the gridworld at each noise exactly and draw the paper's Figure 1."""
    from .figures import plot_figure1

    if not 0.0 < args.gamma < 1.0:
        raise UsageError(f"--gamma: expected a number in (0, 1); got {args.gamma}")
    if args.budget < 0:
        raise UsageError(f"--budget: expected a non-negative number; got {args.budget}")
    for noise in args.noise:
        if not 0.0 <= noise <= 1.0:
            raise UsageError(f"--noise: expected probabilities in [0, 1]; got {noise}")
    out = prepare_output(args.out)
    start = time.perf_counter()
    rows, policies = [], {}
    for noise in args.noise:
        task = tabular.gridworld(noise, gamma=args.gamma, budget=args.budget)
        try:
            solution = tabular.solve(task, backend=args.backend)
        except tabular.InfeasibleCMDPError as exc:
            raise UsageError(f"--noise {noise}: {exc}") from None
        paper = PAPER_GRIDWORLD_OPTIMA.get(round(noise, 6)) if (
            args.gamma == 0.9 and args.budget == 1.5) else None
        rows.append({
            "noise": noise,
            "reward_value": solution.reward_value,
            "cost_value": solution.cost_value,
            "budget": args.budget,
            "multiplier": solution.multipliers,
            "randomised_states": int(np.count_nonzero((solution.policy > 0).sum(axis=1) > 1)),
            "paper_reward_value": "" if paper is None else paper,
            "abs_error_vs_paper": "" if paper is None else abs(solution.reward_value - paper),
            "backend": solution.backend,
        })
        policies[f"noise {noise:g}: V_r = {solution.reward_value:.3f}, "
                 f"V_cost = {solution.cost_value:.3f}"] = solution.policy
        print(f"noise {noise:g}: optimal reward value {solution.reward_value:.5f}, "
              f"cost value {solution.cost_value:.5f} (budget {args.budget:g})"
              + ("" if paper is None else f", paper {paper:.5f}"))
    figure = plot_figure1(policies, out / "figure1.png")
    np.savez(out / "policies.npz", noise=np.array(args.noise),
             policies=np.stack(list(policies.values())))
    write_table(out / "optima.csv", rows)
    write_json(out / "summary.json", {
        "command": "figure1",
        "settings": {"noise": args.noise, "gamma": args.gamma, "budget": args.budget,
                     "backend": args.backend},
        "results": rows,
        "wall_seconds": time.perf_counter() - start,
        "versions": versions(),
    })
    print(f"wrote {figure}, {out / 'optima.csv'}, {out / 'summary.json'}")
    return 0


# --- train ---------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    """Algorithm 1 on the paper's distribution; the result, cover table, summary and figure."""
    from tabular.distributions import GridworldNoise

    from .figures import plot_training
    from .training import check_lemma_3_5, make_coverage_oracle, make_safe_oracle, train

    if not (0.0 < args.delta < 1.0 / 3.0):
        raise UsageError(f"--delta: expected a number in (0, 1/3); got {args.delta}")
    if not args.radius > 0:
        raise UsageError(f"--radius: expected a positive number; got {args.radius}")
    if args.seed < 0:
        raise UsageError(f"--seed: expected a non-negative integer; got {args.seed}")
    if args.heldout < 1:
        raise UsageError(f"--heldout: expected a positive integer; got {args.heldout}")
    out = prepare_output(args.out)
    distribution = GridworldNoise(mean=args.mean, std=args.std, gamma=args.gamma,
                                  budget=args.budget)
    coverage = make_coverage_oracle(args.oracle, args.radius)
    safe_oracle = make_safe_oracle(args.safe_oracle, xi=args.xi, parameter=args.safe_parameter)
    result = train(distribution, coverage, args.delta, seed=args.seed, safe_oracle=safe_oracle,
                   progress=not args.quiet)
    covering = args.hooks.get("covering_number")
    covering_number = covering(distribution, args.radius, args.delta, oracle=args.oracle) if (
        covering) else None
    report = check_lemma_3_5(result, distribution, coverage, n_heldout=args.heldout,
                             seed=args.seed + 1, covering_number=covering_number,
                             progress=not args.quiet)
    result.extra["lemma_3_5"] = report
    result.save(out / "training.npz")
    form = distribution.build(result.cover_parameters[0]).utility_form
    rows = [{"parameter": float(result.cover_parameters[i, 0]),
             "reward_value": float(result.reward_values[i]),
             "cost_value": float(result.cost_values[i]),
             "safe_reward_value": float(result.safe_reward_values[i]),
             "safe_cost_value": float(result.safe_cost_values[i]),
             "safe_margin_paper_units": float(result.safe_margin[i]),
             "safe_slack_cost_units": float(form.budgets[0] - result.safe_cost_values[i])}
            for i in np.argsort(result.cover_parameters[:, 0])]
    write_table(out / "cover.csv", rows)
    plot_training(result, distribution, out / "training.png")
    summary = {
        "command": "train",
        "settings": {"radius": args.radius, "delta": args.delta, "oracle": args.oracle,
                     "seed": args.seed, "safe_oracle": result.settings["safe_oracle"],
                     "distribution": distribution.to_dict(), "heldout": args.heldout},
        "cover_size": result.cover_size,
        "rounds": result.rounds,
        "n_sampled": result.n_sampled,
        "covering_number": covering_number,
        "heldout_coverage": report["heldout_coverage"],
        "safe_policy_min_slack": report["safe_policy_min_slack_cost_units"],
        "lemma_3_5": report,
        "wall_seconds": result.wall_seconds,
        "versions": versions(),
    }
    write_json(out / "summary.json", summary)
    print(f"cover of {result.cover_size} tasks at noise "
          f"{np.array2string(np.sort(result.cover_parameters[:, 0]), precision=4)} "
          f"after {len(result.rounds)} rounds ({result.n_sampled} sampled tasks, "
          f"{result.wall_seconds:.2f} s); covering number {covering_number}; held-out coverage "
          f"{report['heldout_coverage']:.3f} (Lemma 3.5 bound {report['coverage_bound']:.3f}); "
          f"pi_s min cost slack {report['safe_policy_min_slack_cost_units']:.4f}")
    print(f"wrote {out / 'training.npz'}, {out / 'cover.csv'}, {out / 'training.png'}, "
          f"{out / 'summary.json'}")
    return 0


# --- reproduce -----------------------------------------------------------------------------


#: log entries that describe one run rather than the algorithm's settings
RUN_SPECIFIC_LOG = ("events", "candidate_order", "final_alpha", "final_candidate", "iterations",
                    "updates", "plans_tried")


def run_reproduce(args: argparse.Namespace) -> int:
    """The paper's gridworld experiment end to end: Figures 1 and 2, per-run table, summary."""
    from .experiment import (
        FIGURE_2,
        FIGURE_2_APPENDIX,
        ExperimentSettings,
        reproduce,
        settings_dict,
        summarise,
    )
    from .figures import plot_figure1, plot_figure2

    settings = ExperimentSettings(
        episodes=args.episodes, tasks=args.tasks, horizon=args.horizon, radius=args.radius,
        delta=args.delta, seed=args.seed, algorithms=tuple(args.algorithms)).validate()
    if args.workers < 1:
        raise UsageError(f"--workers: expected a positive integer; got {args.workers}")
    out = prepare_output(args.out)
    start = time.perf_counter()
    training, distribution, records, rows = reproduce(settings, progress=not args.quiet,
                                                      workers=args.workers)
    training.save(out / "training.npz")
    write_table(out / "runs.csv", rows)
    np.savez_compressed(out / "curves.npz", **{
        f"{key}.{name}": np.stack([getattr(r, name) for r in runs]).astype(np.float32)
        for key, runs in records.items() for name in ("reward_value", "cost_value")})
    figure1 = {f"noise {p:g}": tabular.solve(tabular.gridworld(p)).policy for p in (0.1, 0.3)}
    plot_figure1(figure1, out / "figure1.png")
    figures = ["figure1.png"]
    for name, keys in (("figure2.png", FIGURE_2), ("figure2_appendix.png", FIGURE_2_APPENDIX)):
        shown = {key: records[key] for key in keys if key in records}
        if shown:
            plot_figure2(shown, distribution.budget, out / name)
            figures.append(name)
    others = {key: runs for key, runs in records.items()
              if key not in FIGURE_2 + FIGURE_2_APPENDIX}
    if others:
        plot_figure2(others, distribution.budget, out / "figure2_other.png")
        figures.append("figure2_other.png")
    summary = {
        "command": "reproduce",
        "settings": settings_dict(settings) | {
            "training": training.settings, "cover_parameters": training.cover_parameters[
                :, 0].tolist()},
        "wall_seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    for key, runs in records.items():
        summary[key] = summarise(runs)
        summary[key]["parameters"] = {name: value for name, value in runs[0].log.items()
                                      if name not in RUN_SPECIFIC_LOG}
        summary[key]["events"] = [r.log.get("events", []) for r in runs]
    write_json(out / "summary.json", summary)
    print(f"training: cover of {training.cover_size} tasks; test phase: "
          f"{settings.tasks} tasks x {settings.episodes} episodes of {settings.horizon} steps")
    for key in records:
        s = summary[key]
        print(f"{key:16s} [{s['preset']}] final regret mean {s['final_regret_mean']:10.1f} "
              f"(q10 {s['final_regret_q10']:.1f}, q90 {s['final_regret_q90']:.1f}); "
              f"violating episodes {s['violations']} in {s['runs_with_violation']}/{s['runs']} "
              f"runs; max cost {s['max_cost_value']:.4f}")
    print(f"wrote {out}/{', '.join(figures)}, runs.csv, curves.npz, training.npz, "
          f"summary.json in {summary['wall_seconds']:.1f} s")
    return 0


def run_violations(args: argparse.Namespace) -> int:
    """Violation rates over many runs on test tasks drawn from D (Clopper-Pearson intervals)."""
    from .experiment import ALGORITHMS, ExperimentSettings, experiment_training, violation_rates
    from .sweep import ResultStore
    from .training import TrainingResult

    if args.runs < 1:
        raise UsageError(f"--runs: expected a positive integer; got {args.runs}")
    if args.workers < 1:
        raise UsageError(f"--workers: expected a positive integer; got {args.workers}")
    settings = ExperimentSettings(episodes=args.episodes, horizon=args.horizon, seed=args.seed,
                                  delta=args.delta, algorithms=tuple(args.algorithms)).validate()
    out = prepare_output(args.out)
    start = time.perf_counter()
    # the store refuses a folder that holds anything but this same sweep (resume = same command)
    store = ResultStore(out, {"command": "violations", "runs": args.runs,
                              "episodes": settings.episodes, "horizon": settings.horizon,
                              "seed": args.seed, "delta": settings.delta,
                              "algorithms": list(settings.algorithms)})
    path = out / "training.npz"
    if not path.exists():
        experiment_training(settings)[0].save(path)
    TrainingResult.load(path)
    result = violation_rates(path, settings.algorithms, args.runs, settings.episodes,
                             settings.horizon, settings.delta, seed=args.seed + 1,
                             workers=args.workers, progress=not args.quiet, engine=args.engine,
                             scheduler=args.scheduler, store=store)
    write_table(out / "runs.csv", result["runs"])
    summary = {"command": "violations",
               "settings": {"runs": args.runs, "episodes": settings.episodes,
                            "horizon": settings.horizon, "seed": args.seed,
                            "delta": settings.delta,
                            "presets": {k: ALGORITHMS[k][1] for k in settings.algorithms}},
               "per_algorithm": result["per_algorithm"],
               "wall_seconds": time.perf_counter() - start, "versions": versions()}
    write_json(out / "summary.json", summary)
    for key, s in result["per_algorithm"].items():
        low, high = s["clopper_pearson_95"]
        print(f"{key:16s} [{ALGORITHMS[key][1]}] runs with a violation: "
              f"{s['runs_with_violation']}/{s['runs']} = {s['fraction']:.4f} "
              f"(95% CI {low:.4f}-{high:.4f}); max cost {s['max_cost_value']:.4f}")
    return 0


# --- entry point ------------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser, out: str, *names: str,
              episodes: int = 40_000) -> None:
    """The flags several commands share, by name: ``--out`` always, then any of "seed", "quiet",
    "workers", "engine" (``--engine`` and ``--scheduler``), "episodes", "horizon", "delta"."""
    parser.add_argument("--out", default=out, help="output folder")
    flags = {
        "episodes": (["--episodes"], dict(type=int, default=episodes, help="episodes K per run")),
        "horizon": (["--horizon"], dict(type=int, default=600, help="steps per episode H")),
        "delta": (["--delta"], dict(type=float, default=0.05, help="delta of Algorithm 1")),
        "seed": (["--seed"], dict(type=int, default=0, help="root seed")),
        "workers": (["--workers"], dict(type=int, default=2, help="worker processes")),
        "quiet": (["--quiet"], dict(action="store_true", help="no progress bars")),
    }
    for name in names:
        if name == "engine":
            parser.add_argument("--engine", choices=["local", "dask"], default="local",
                                help="local process pool, or Dask (safepce[dask])")
            parser.add_argument("--scheduler", default=None,
                                help="Dask scheduler address (default: a LocalCluster)")
            continue
        args, kwargs = flags[name]
        parser.add_argument(*args, **kwargs)


def build_parser(extend=None) -> argparse.ArgumentParser:
    """The parser of theory's commands; ``extend(subparsers)`` lets bounds.cli add its own."""
    parser = OneLineParser(
        prog="safepce",
        description="Constrained meta-RL with provable test-time safety, checked exactly.")
    commands = parser.add_subparsers(dest="command", required=True)
    figure1 = commands.add_parser(
        "figure1", help="solve the paper's gridworld exactly and draw its Figure 1",
        description="Solve the 7x7 gridworld (PAPER.md section 7) by the occupancy LP at each "
                    "noise level and draw the optimal policies (the paper's Figure 1).")
    figure1.add_argument("--out", default="results/figure1", help="output folder")
    figure1.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.3],
                         help="noise levels to solve (default: 0.1 0.3)")
    figure1.add_argument("--gamma", type=float, default=0.9, help="discount factor")
    figure1.add_argument("--budget", type=float, default=1.5, help="discounted-cost budget")
    figure1.add_argument("--backend", choices=["cvxpy", "highspy"], default="cvxpy",
                         help="LP backend (both use HiGHS)")
    figure1.set_defaults(run=run_figure1)

    trainer = commands.add_parser(
        "train", help="run the training phase (Algorithm 1) on the paper's distribution",
        description="Algorithm 1 with Subroutine 3 (PAPER.md section 2) on gridworld noise ~ "
                    "Normal(mean, std) clipped to [0, 0.5], then Lemma 3.5's quantities on "
                    "held-out tasks, computed exactly.")
    add_flags(trainer, "results/train", "seed", "quiet")
    trainer.add_argument("--radius", type=float, default=0.005,
                         help="cover radius (noise units for --oracle parameter, task distance "
                              "for --oracle distance; default 0.005)")
    trainer.add_argument("--delta", type=float, default=0.05, help="delta in (0, 1/3)")
    trainer.add_argument("--oracle", choices=["parameter", "distance"], default="parameter",
                         help="O_c: compare noise parameters (the authors') or exact distance")
    trainer.add_argument("--safe-oracle", choices=["designated", "worst-case"],
                         default="designated", help="O_s (default: optimal policy of one task)")
    trainer.add_argument("--safe-parameter", type=float, default=0.4,
                         help="noise of the designated safe task (default 0.4, as published)")
    trainer.add_argument("--xi", type=float, default=0.0,
                         help="required margin of pi_s on the cover (normalised utility units)")
    trainer.add_argument("--heldout", type=int, default=1000, help="held-out tasks for Lemma 3.5")
    trainer.add_argument("--mean", type=float, default=0.3, help="noise mean")
    trainer.add_argument("--std", type=float, default=0.03, help="noise standard deviation")
    trainer.add_argument("--gamma", type=float, default=0.9, help="discount factor")
    trainer.add_argument("--budget", type=float, default=1.5, help="discounted-cost budget")
    trainer.set_defaults(run=run_train)

    from .experiment import ALGORITHMS, PAPER_ALGORITHMS

    repro = commands.add_parser(
        "reproduce", help="the paper's gridworld experiment end to end (the main job)",
        description="Training phase with the experiment's settings, then each test-time "
                    "algorithm on the published test tasks (PAPER.md sections 7-8); writes "
                    "Figures 1 and 2, runs.csv, curves.npz and summary.json.")
    add_flags(repro, "results/reproduce", "episodes", "horizon", "delta", "seed", "workers",
              "quiet")
    repro.add_argument("--tasks", type=int, default=10, help="how many of the ten test tasks")
    repro.add_argument("--radius", type=float, default=0.005, help="cover radius (noise)")
    repro.add_argument("--algorithms", nargs="+", default=list(PAPER_ALGORITHMS),
                       choices=list(ALGORITHMS),
                       help="test-time algorithms (keys of summary.json); default: the paper's six")
    repro.set_defaults(run=run_reproduce)

    violations = commands.add_parser(
        "violations", help="fraction of runs with a violation, over test tasks drawn from D",
        description="Runs each algorithm on --runs test tasks drawn from D with fresh seeds and "
                    "reports the fraction of runs with any infeasible deployed policy, with a "
                    "95%% Clopper-Pearson interval. Every finished run is stored in OUT/store; "
                    "the same command resumes an interrupted sweep.")
    add_flags(violations, "results/violations", "episodes", "horizon", "delta", "seed",
              "workers", "engine", "quiet")
    violations.add_argument("--runs", type=int, default=1000, help="runs per algorithm")
    violations.add_argument("--algorithms", nargs="+", choices=list(ALGORITHMS),
                            default=["safe-pce", "safe-pce-theory", "pce"])
    violations.set_defaults(run=run_violations)
    if extend is not None:
        extend(commands)
    return parser


def main(argv: list[str] | None = None, hooks: dict | None = None,
         parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    args.hooks = hooks or {}
    try:
        return args.run(args)
    except ValueError as exc:   # UsageError and the library's validation errors
        print(f"safepce {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
