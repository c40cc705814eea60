"""Entry point of the ``safepce`` console script.

bounds sits at the top of the import flow (tabular <- theory <- bounds), so the command line is
assembled here: theory's commands, with the bounds functions they report (covering numbers)
passed down as hooks, plus the bounds commands (``verify``).
"""

from __future__ import annotations

import argparse
import sys
import time

from theory import cli as theory_cli
from theory.experiment import ALGORITHMS

from .covering import covering_number


def run_verify_command(args: argparse.Namespace) -> int:
    """Check the paper's claims on exact quantities; print a table, write verify.json and plots."""
    from .verify import claims_json, claims_table, run_verify

    if args.workers < 1:
        raise theory_cli.UsageError(f"--workers: expected a positive integer; got {args.workers}")
    out = theory_cli.prepare_output(args.out)
    start = time.perf_counter()
    claims = run_verify(out, quick=args.quick, workers=args.workers, progress=not args.quiet)
    theory_cli.write_json(out / "verify.json", claims_json(claims))
    print(claims_table(claims))
    failed = [c for c in claims if not c.passed]
    for claim in failed:
        print(f"FAIL {claim.claim}: {claim.note}")
    print(f"{len(claims) - len(failed)} passed, {len(failed)} failed in "
          f"{time.perf_counter() - start:.1f} s; wrote {out / 'verify.json'} and plots")
    return 0


def run_sweep_delta(args: argparse.Namespace) -> int:
    """Violation rate against Algorithm 1's delta on the gridworld, with a plot."""
    from .sweeps import plot_violation_vs_delta, violation_rate_vs_delta

    if args.runs < 1:
        raise theory_cli.UsageError(f"--runs: expected a positive integer; got {args.runs}")
    for delta in args.deltas:
        if not 0 < delta < 1 / 3:
            raise theory_cli.UsageError(f"--deltas: expected numbers in (0, 1/3); got {delta}")
    out = theory_cli.prepare_output(args.out)
    start = time.perf_counter()
    rows = violation_rate_vs_delta(args.deltas, args.algorithms, args.runs, args.episodes, out,
                                   seed=args.seed, workers=args.workers, progress=not args.quiet,
                                   engine=args.engine, scheduler=args.scheduler)
    theory_cli.write_table(out / "violation_vs_delta.csv", rows)
    plot_violation_vs_delta(rows, out / "violation_vs_delta.png")
    theory_cli.write_json(out / "summary.json", {
        "command": "sweep-delta", "settings": {"deltas": args.deltas, "runs": args.runs,
                                               "episodes": args.episodes, "seed": args.seed,
                                               "algorithms": args.algorithms},
        "rows": rows, "wall_seconds": time.perf_counter() - start,
        "versions": theory_cli.versions()})
    for row in rows:
        print(f"delta {row['delta']:<6g} {row['algorithm']:16s} [{row['preset']}] cover "
              f"{row['cover_size']:3d}: {row['violating_runs']}/{row['runs']} runs violate "
              f"({row['low']:.3f}-{row['high']:.3f})")
    return 0


def add_commands(commands) -> None:
    sweep = commands.add_parser(
        "sweep-delta", help="violation rate against Algorithm 1's delta (gridworld)",
        description="Retrain with each delta and measure the fraction of runs with a violation "
                    "over test tasks drawn from D (95%% Clopper-Pearson intervals).")
    theory_cli.add_flags(sweep, "results/sweep-delta", "episodes", "seed", "workers", "engine",
                         "quiet")
    sweep.add_argument("--deltas", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.3])
    sweep.add_argument("--runs", type=int, default=200, help="runs per delta and algorithm")
    sweep.add_argument("--algorithms", nargs="+", default=["safe-pce", "pce"],
                       choices=list(ALGORITHMS))
    sweep.set_defaults(run=run_sweep_delta)

    verify = commands.add_parser(
        "verify", help="check the paper's lemmas and theorems numerically",
        description="Lemma C.3, Lemma 3.5, Lemma 4.5 safety, Theorem 4.2's explicit regret "
                    "bound, the hard family of Theorem 5.1 and its explicit lower bound's "
                    "slopes, the scaled preset and the published experiment's safety claim.")
    theory_cli.add_flags(verify, "results/verify", "workers", "quiet")
    verify.add_argument("--quick", action="store_true",
                        help="small sizes (under 3 minutes on 2 cores)")
    verify.set_defaults(run=run_verify_command)


def main(argv: list[str] | None = None) -> int:
    return theory_cli.main(argv, hooks={"covering_number": covering_number},
                           parser=theory_cli.build_parser(extend=add_commands))


if __name__ == "__main__":
    sys.exit(main())
