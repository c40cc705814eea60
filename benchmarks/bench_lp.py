"""LP time per gridworld solve (cold and re-solve) beside scipy.optimize.linprog, as ratios.

Run: .venv/bin/python benchmarks/bench_lp.py [--tasks N]

Cold = the first solve in the process (for cvxpy: compilation of the DPP problem included).
Re-solve = median over N tasks of the family (noise 0.2 .. 0.4) once the compiled problem or the
HiGHS model exists. linprog builds its sparse LP from scratch each time, as a user would.
"""

import argparse
import time

import numpy as np
import scipy.sparse as sparse
from scipy.optimize import linprog

from safepce import tabular


def linprog_solve(task):
    S, A = task.n_states, task.n_actions
    s, a, s_next = np.nonzero(task.P)
    flow = sparse.coo_array(
        (np.concatenate([np.ones(S * A), -task.gamma * task.P[s, a, s_next]]),
         (np.concatenate([np.repeat(np.arange(S), A), s_next]),
          np.concatenate([np.arange(S * A), s * A + a]))), shape=(S, S * A)).tocsr()
    result = linprog(-task.r.reshape(-1), A_ub=task.cost.reshape(1, -1), b_ub=[task.budget],
                     A_eq=flow, b_eq=task.rho, bounds=(0, None), method="highs")
    return -result.fun


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    noises = np.linspace(0.2, 0.4, args.tasks)
    tasks = [tabular.gridworld(p) for p in noises]
    results = {}
    for name, solve in (
        ("cvxpy + HiGHS (DPP, compiled once)",
         lambda t: tabular.solve(t, backend="cvxpy").lp_value),
        ("highspy direct (cold, layout cached)",
         lambda t: tabular.solve(t, backend="highspy").lp_value),
        ("highspy direct (warm basis, opt-in)",
         lambda t: tabular.solve(t, backend="highspy", warm_start=True).lp_value),
        ("scipy linprog(method='highs')", linprog_solve),
    ):
        start = time.perf_counter()
        first = solve(tabular.gridworld(0.3))
        cold = time.perf_counter() - start
        times, values = [], []
        for task in tasks:
            start = time.perf_counter()
            values.append(solve(task))
            times.append(time.perf_counter() - start)
        results[name] = (cold, float(np.median(times)), np.array(values), first)
    reference = results["scipy linprog(method='highs')"]
    print(f"gridworld LP (196 variables, 50 rows), {args.tasks} re-solves over noise 0.2..0.4")
    print(f"{'solver':38s} {'cold ms':>8s} {'re-solve ms':>12s} {'vs linprog':>11s} "
          f"{'max |value diff|':>17s}")
    for name, (cold, median, values, _) in results.items():
        print(f"{name:38s} {1e3 * cold:8.2f} {1e3 * median:12.3f} "
              f"{reference[1] / median:10.2f}x {np.max(np.abs(values - reference[2])):17.2e}")


if __name__ == "__main__":
    main()
