"""Scale: solve, evaluate, simulate, train and one Safe-PCE run on sparse CMDPs of 10^2 .. 10^5
states, with fitted growth exponents, beside scipy's linprog(method="highs") on the same LP and
pymdptoolbox's policy iteration on the unconstrained task, as ratios.

Run: .venv/bin/python benchmarks/bench_scale.py [--sizes 100 1000 10000 100000] [--out DIR]
     (pymdptoolbox is optional: `pip install pymdptoolbox`; its column is empty without it)

Tasks: tabular.families.random_sparse_cmdp (A = 4, 10 distinct successors per pair, gamma 0.9,
budget = the uniform policy's cost, where the constraint binds). Every time is CPU seconds of
this process (time.process_time, all threads), the first call of each kind excluded from
nothing: numba and import costs are paid before the table (a warm-up task of 50 states).

* solve: tabular.solve (backend "auto": the Lagrangian route for a sparse task), beside
  linprog(method="highs") on the occupancy LP built here from the same CSR kernel (sizes up to
  --linprog-max; in a child process given up after --linprog-timeout wall seconds, printed
  as ">"), and the two optimal values' difference.
* evaluate: tabular.evaluate of the optimal policy (certified sparse solves).
* simulate: 1,000 episodes of 100 steps of the optimal policy (numba, CSR tables).
* policy iteration: tabular.lagrangian.policy_iteration on the reward alone, beside
  pymdptoolbox's PolicyIteration on the same unconstrained MDP (sizes up to --pi-max).
* train + run: Algorithm 1 with the exact distance oracle (radius --radius), O_l per cover task,
  the min-cost O_s, on tabular.distributions.random_sparse_family of that size; then one
  Safe-PCE (paper-experiment preset) run of --episodes episodes on a task drawn from D (sizes
  up to --train-max).
* gridworld: what `safepce train --family gridworld --size N` does (Algorithm 1 with the
  family's defaults, then Lemma 3.5's check on 1,000 held-out tasks), then one Safe-PCE run of
  --episodes episodes of 600 steps on the noise-0.3 task, for each N of --grid-sizes.

Growth exponents are least-squares slopes of log(time) on log(S) over the sizes measured.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sparse
from scipy.optimize import linprog

from safepce import tabular
from safepce.tabular.distributions import random_sparse_family
from safepce.tabular.families import random_sparse_cmdp
from safepce.tabular.lagrangian import policy_iteration


def cpu(function, *args, **kwargs):
    start = time.process_time()
    value = function(*args, **kwargs)
    return time.process_time() - start, value


def linprog_value(task) -> tuple[float, float]:
    """The occupancy LP from its definition, handed to scipy's HiGHS (its default method):
    (CPU seconds, optimal value)."""
    start = time.process_time()
    S, A = task.n_states, task.n_actions
    flow = sparse.kron(sparse.eye(S), np.ones((1, A))) - task.gamma * task.transition_matrix.T
    result = linprog(-task.r.reshape(-1), A_eq=sparse.csr_array(flow), b_eq=task.rho,
                     A_ub=task.cost.reshape(1, -1), b_ub=[task.budget], bounds=(0, None),
                     method="highs")
    return time.process_time() - start, -result.fun


def _linprog_job(n_states: int, seed: int):
    return linprog_value(random_sparse_cmdp(n_states, seed=seed))


def linprog_with_timeout(n_states: int, seed: int, timeout: float):
    """linprog in a child process (same task, rebuilt from its seed), given up after
    ``timeout`` seconds: (CPU seconds, value) or (None, None)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        job = pool.apply_async(_linprog_job, (n_states, seed))
        try:
            return job.get(timeout=timeout)
        except multiprocessing.TimeoutError:
            pool.terminate()
            return None, None


def mdptoolbox_policy_iteration(task):
    try:
        import mdptoolbox.mdp
    except ImportError:
        return None
    S, A = task.n_states, task.n_actions
    kernel = task.transition_matrix
    transitions = [sparse.csr_matrix(kernel[np.arange(S) * A + a]) for a in range(A)]
    with warnings.catch_warnings():          # its own input check compares sparse >= 0
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        solver = mdptoolbox.mdp.PolicyIteration(transitions, task.r, task.gamma, eval_type=1)
        solver.run()
    return np.asarray(solver.policy)


def train_and_run(n_states: int, radius: float, episodes: int, seed: int):
    from safepce import theory
    from safepce.theory.algorithms.registry import make_algorithm
    from safepce.theory.harness import run_test_phase

    family = random_sparse_family(n_states=n_states, seed=seed)
    train_time, training = cpu(theory.train, family, theory.DistanceCoverage(radius), 0.1,
                               seed=seed, safe_oracle=theory.MinimumCostSafePolicy(),
                               progress=False)
    task = family.build(family.sample(1, seed + 1)[0])
    algorithm = make_algorithm("safe-pce", training, family, horizon=100)
    run_time, record = cpu(run_test_phase, algorithm, task, episodes, 100, seed)
    violating = bool(np.any(record.cost_value > task.budget + 1e-12))
    return train_time, run_time, training.cover_size, violating


def gridworld_train_and_run(size: int, episodes: int, seed: int):
    """CPU seconds of `safepce train --family gridworld --size N` (the same calls) and of one
    Safe-PCE run on its noise-0.3 task."""
    from safepce import theory
    from safepce.theory.algorithms.registry import make_algorithm
    from safepce.theory.harness import run_test_phase
    from safepce.theory.training import check_lemma_3_5, make_coverage_oracle, make_safe_oracle

    spec = tabular.families.family_spec("gridworld")
    family = tabular.families.make("gridworld", size=size)
    coverage = make_coverage_oracle(spec.oracle, spec.radius)

    def train():
        result = theory.train(family, coverage, 0.05, seed=seed, progress=False,
                              safe_oracle=make_safe_oracle(spec.safe_oracle,
                                                           parameter=spec.safe_parameter))
        return result, check_lemma_3_5(result, family, coverage, n_heldout=1000)

    train_time, (training, report) = cpu(train)
    algorithm = make_algorithm("safe-pce", training, family, horizon=spec.horizon)
    run_time, record = cpu(run_test_phase, algorithm, family.build([0.3]), episodes,
                           spec.horizon, seed)
    return {"grid": size, "S": size * size, "train": train_time, "run": run_time,
            "cover_size": training.cover_size, "heldout_coverage": report["heldout_coverage"],
            "final_regret": float(record.cumulative_regret[-1]),
            "violating_episodes": int(np.sum(record.cost_value > record.budget))}


def exponent(sizes, times) -> float | None:
    points = [(s, t) for s, t in zip(sizes, times, strict=True) if t is not None and t > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--linprog-max", type=int, default=10_000)
    parser.add_argument("--linprog-timeout", type=float, default=300.0,
                        help="wall seconds after which linprog is given up (printed as >)")
    parser.add_argument("--pi-max", type=int, default=10_000)
    parser.add_argument("--train-max", type=int, default=10_000)
    parser.add_argument("--radius", type=float, default=0.05)
    parser.add_argument("--episodes", type=int, default=40_000)
    parser.add_argument("--grid-sizes", type=int, nargs="*", default=[50])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from safepce.theory.sweep import tune_process

    tune_process()                                 # as the command line does
    warm = random_sparse_cmdp(50, seed=0)          # imports, numba, first-call costs
    tabular.simulate(warm, tabular.solve(warm).policy, 10, 10, seed=0)
    load = os.getloadavg()
    rows = []
    for S in args.sizes:
        row = {"S": S}
        row["build"], task = cpu(random_sparse_cmdp, S, seed=args.seed)
        row["nnz"] = int(task.transition_matrix.nnz)
        row["solve"], solution = cpu(tabular.solve, task)
        row["value"] = solution.reward_value
        row["multiplier"] = float(solution.multipliers)
        row["randomising_states"] = int(((solution.policy > 0).sum(axis=1) > 1).sum())
        row["feasible"] = bool(solution.cost_value <= task.budget)
        if S <= args.linprog_max:
            seconds, value = linprog_with_timeout(S, args.seed, args.linprog_timeout)
            if seconds is None:
                row["linprog_timeout"] = args.linprog_timeout
            else:
                row["linprog"] = seconds
                row["value_difference"] = abs(value - solution.reward_value)
        row["evaluate"], _ = cpu(tabular.evaluate, task, solution.policy)
        row["simulate"], _ = cpu(tabular.simulate, task, solution.policy, 1000, 100, args.seed)
        row["policy_iteration"], (actions, _) = cpu(policy_iteration, task, task.r)
        if S <= args.pi_max:
            row["mdptoolbox"], policy = cpu(mdptoolbox_policy_iteration, task)
            if policy is None:
                row.pop("mdptoolbox")
            else:
                ours = tabular.evaluate(task, np.eye(4)[actions]).reward_value
                theirs = tabular.evaluate(task, np.eye(4)[policy]).reward_value
                row["pi_value_difference"] = abs(ours - theirs)
        if S <= args.train_max:
            row["train"], row["run"], row["cover_size"], row["run_violates"] = train_and_run(
                S, args.radius, args.episodes, args.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def column(name):
        return [row.get(name) for row in rows]

    sizes = column("S")
    print(f"\nsparse random CMDPs: A = 4, 10 successors, gamma 0.9; CPU seconds; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    header = (f"{'S':>7s} {'solve':>8s} {'linprog':>8s} {'ratio':>7s} {'|dV|':>8s} "
              f"{'eval':>7s} {'sim':>7s} {'PI':>7s} {'mdptb':>7s} {'ratio':>7s} "
              f"{'train':>7s} {'run':>6s} {'cover':>5s}")
    print(header)

    def fmt(value, width, spec=".3g"):
        return f"{'-':>{width}s}" if value is None else f"{value:>{width}{spec}}"

    for row in rows:
        lp_ratio = row["linprog"] / row["solve"] if "linprog" in row else None
        pi_ratio = row["mdptoolbox"] / row["policy_iteration"] if "mdptoolbox" in row else None
        linprog = fmt(row.get("linprog"), 8) if "linprog_timeout" not in row else \
            f"{'>' + format(row['linprog_timeout'], '.0f'):>8s}"
        print(f"{row['S']:>7d} {fmt(row['solve'], 8)} {linprog} "
              f"{fmt(lp_ratio, 7)} {fmt(row.get('value_difference'), 8, '.1e')} "
              f"{fmt(row['evaluate'], 7)} {fmt(row['simulate'], 7)} "
              f"{fmt(row['policy_iteration'], 7)} {fmt(row.get('mdptoolbox'), 7)} "
              f"{fmt(pi_ratio, 7)} {fmt(row.get('train'), 7)} {fmt(row.get('run'), 6)} "
              f"{fmt(row.get('cover_size'), 5, 'd') if 'cover_size' in row else fmt(None, 5)}")
    grids = []
    for size in args.grid_sizes:
        grids.append(gridworld_train_and_run(size, args.episodes, args.seed))
        print(json.dumps(grids[-1]), flush=True)
    for grid in grids:
        print(f"gridworld {grid['grid']}x{grid['grid']} ({grid['S']} states): train "
              f"{grid['train']:.1f} CPU-s (cover {grid['cover_size']}), one Safe-PCE run of "
              f"{args.episodes} episodes {grid['run']:.1f} CPU-s; together "
              f"{grid['train'] + grid['run']:.1f} CPU-s")
    exponents = {name: exponent(sizes, column(name)) for name in (
        "solve", "linprog", "evaluate", "simulate", "policy_iteration", "mdptoolbox", "train")}
    print("growth exponents (time ~ S^k): " + ", ".join(
        f"{name} {value:.2f}" for name, value in exponents.items() if value is not None))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_scale.json").write_text(json.dumps(
            {"rows": rows, "gridworlds": grids, "exponents": exponents, "load_average": load,
             "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
