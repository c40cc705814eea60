"""DOPE/DOPE+'s lifted extended LP: the exact Lagrangian route (what theory.algorithms.dope uses)
against Clarabel and HiGHS.

Run: .venv/bin/python benchmarks/bench_extended_lp.py [--repeats N]

The LP is the one DOPE+ (paper-experiment preset) solves at the end of its warm-up: counts from
14,000 episodes of pi_s on the noise-0.3 gridworld, its widths and bonuses; 9,800 columns.
Times are medians over N solves of the same LP, model construction included for all;
all must agree on the optimum to 1e-5 relative.
"""

import argparse
import statistics
import time

import numpy as np

from safepce import tabular
from safepce.theory.algorithms.dope import DOPEPlus, extended_lp, extended_lp_model
from safepce.theory.experiment import ExperimentSettings, experiment_training


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    training, distribution = experiment_training(ExperimentSettings())
    algorithm = DOPEPlus(training, training.cover_tasks(distribution), 600)
    task = tabular.gridworld(0.3)
    algorithm.reset(40_000, 0)
    for first in range(0, 14_000, 1000):
        algorithm._count(tabular.simulate_trajectories(task, training.safe_policy, 1000, 600,
                                                       seed=1, first_episode=first))
    lp_args = algorithm.lp_inputs()
    model = extended_lp_model(*lp_args)
    print(f"extended LP: {model.matrix.shape[1]} columns, {model.matrix.shape[0]} rows, "
          f"{model.matrix.nnz} nonzeros")
    times = {}
    values = {}
    for name, solve in (("Lagrangian (extended PI)",
                         lambda: extended_lp(*lp_args, solver="lagrangian").value),
                        ("HiGHS (simplex)", lambda: extended_lp(*lp_args, solver="highs").value),
                        ("Clarabel (interior point)",
                         lambda: extended_lp(*lp_args, solver="clarabel").value)):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            values[name] = solve()
            runs.append(time.perf_counter() - start)
        times[name] = statistics.median(runs)
    ours = times["Lagrangian (extended PI)"]
    for name in times:
        print(f"{name:28s} {1000 * times[name]:8.1f} ms   optimum {values[name]:.9f}   "
              f"time / Lagrangian's {times[name] / ours:7.1f}")
    for name in values:
        assert np.isclose(values[name], values["Lagrangian (extended PI)"], rtol=1e-5), name


if __name__ == "__main__":
    main()
