"""The ``safepce`` command line.

Every command writes into one output folder: a tidy CSV of per-run results, ``summary.json``
with the settings used, and the figures. Bad input ends in a one-line error and exit code 2.
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


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as exc:   # UsageError and the library's validation errors
        print(f"safepce {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
