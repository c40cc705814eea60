"""Scale, side by side: the constrained solve of safepce against the strongest peers on the same
occupancy LP, the unconstrained policy iteration against a sparse value iteration and
pymdptoolbox, and the simulator, on random sparse tasks of 10^3 .. 10^6 states and on
gridworlds of 50 x 50 and 200 x 200 states; every budget binds (the multiplier is reported).

Run: .venv/bin/python benchmarks/bench_scale.py [--sizes 1000 10000 100000 1000000]
         [--grids 50 200] [--peer-max 10000] [--timeout 300] [--out DIR]
     (Clarabel and highspy come with safepce; pymdptoolbox is optional: `pip install
     pymdptoolbox`, its column is empty without it)

Every time is CPU seconds (time.process_time) of a fresh child process that builds the task
from its description, pays its imports and numba compilation on a 50-state task first, then
times one call; peak memory is the child's maximum resident set (ru_maxrss). Contenders run in
turn, each in its own child, given up after --timeout wall seconds (printed as ">").

Tasks: random: tabular.families.random_sparse_cmdp (A = 4, 10 distinct successors per pair,
gamma 0.9, budget = the uniform policy's exact cost); grid: the paper's gridworld rules on an
n x n grid (tabular.families.sparse_gridworld, noise 0.3, gamma 0.9) with the budget halfway
between the least cost and the cost of the reward-optimal policy.

Contenders on the LP max r.x s.t. sum_a x(s,a) - gamma sum P(s|s',a') x(s',a') = rho(s),
cost.x <= b, x >= 0 (built here from the task's CSR kernel, not by safepce):
  ours      tabular.solve (the Lagrangian route: certified policy iteration, multiplier search)
  clarabel  Clarabel's interior point method (clarabel.DefaultSolver, default settings)
  simplex   HiGHS dual simplex via highspy
  ipm       HiGHS interior point via highspy
  linprog   scipy.optimize.linprog(method="highs")
Unconstrained (reward only): ours = tabular.lagrangian.policy_iteration; vi = sparse value
iteration written here (V <- max_a r + gamma P V until ||T V - V||_inf / (1 - gamma) <= 1e-9
of the value scale); mdptoolbox = pymdptoolbox's PolicyIteration. Simulator: the sampling
tables' build (first call) and 1,000 episodes of 100 steps after it, as steps per second.

Growth exponents are least-squares slopes of log(time) on log(S), over every random size and
over S >= 10^4; and, apart from the machine, of the work (passes over a policy's transitions
times S, counted in a second untimed solve) and of one pass's time (ns per state of one values
backup x S), whose product the time exponent roughly is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np

CONTENDERS = ("ours", "clarabel", "simplex", "ipm", "linprog")
UNCONSTRAINED = ("pi", "vi", "mdptoolbox")


def build(spec: dict):
    """The task of a description {"kind": "random"|"grid", "size": S or n, "seed": ...}."""
    from safepce import tabular
    from safepce.tabular.families import random_sparse_cmdp, sparse_gridworld
    from safepce.tabular.lagrangian import minimum_cost_policy, policy_iteration

    if spec["kind"] == "random":
        return random_sparse_cmdp(spec["size"], seed=spec["seed"])
    task = sparse_gridworld(0.3, spec["size"])
    least = minimum_cost_policy(task, False)[1]
    free = policy_iteration(task, task.r)[0]
    cost = tabular.evaluate(task, np.eye(task.n_actions)[free]).cost_value
    return task.with_budget(0.5 * (least + cost))


def occupancy_lp(task):
    """(objective to minimise, equality matrix, rho, cost row, budget) of the occupancy LP."""
    import scipy.sparse as sparse

    S, A = task.n_states, task.n_actions
    flow = sparse.kron(sparse.eye(S), np.ones((1, A))) - task.gamma * task.transition_matrix.T
    return (-task.r.reshape(-1), sparse.csc_matrix(flow), task.rho,
            task.costs[..., 0].reshape(-1), float(task.budget))


def run_clarabel(task) -> float:
    import clarabel
    import scipy.sparse as sparse

    q, flow, rho, cost, budget = occupancy_lp(task)
    n = q.size
    matrix = sparse.vstack([flow, sparse.csc_matrix(cost[None]), -sparse.eye(n)]).tocsc()
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(sparse.csc_matrix((n, n)), q, matrix,
                                    np.concatenate([rho, [budget], np.zeros(n)]),
                                    [clarabel.ZeroConeT(rho.size),
                                     clarabel.NonnegativeConeT(1 + n)], settings)
    solution = solver.solve()
    return -solution.obj_val


def run_highs(task, method: str) -> float:
    import highspy
    import scipy.sparse as sparse

    q, flow, rho, cost, budget = occupancy_lp(task)
    matrix = sparse.vstack([flow, sparse.csc_matrix(cost[None])]).tocsc()
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("solver", method)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = q.size, matrix.shape[0]
    lp.col_cost_ = q
    lp.col_lower_ = np.zeros(q.size)
    lp.col_upper_ = np.full(q.size, highspy.kHighsInf)
    lp.row_lower_ = np.concatenate([rho, [-highspy.kHighsInf]])
    lp.row_upper_ = np.concatenate([rho, [budget]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    solver.passModel(lp)
    solver.run()
    return -solver.getInfo().objective_function_value


def run_linprog(task) -> float:
    from scipy.optimize import linprog

    q, flow, rho, cost, budget = occupancy_lp(task)
    result = linprog(q, A_eq=flow, b_eq=rho, A_ub=cost[None], b_ub=[budget], bounds=(0, None),
                     method="highs")
    return -result.fun


def value_iteration(task) -> np.ndarray:
    """Sparse value iteration to a certified 1e-9 of the value scale; the greedy actions."""
    S, A, gamma = task.n_states, task.n_actions, task.gamma
    kernel, reward = task.transition_matrix, task.r.reshape(-1)
    values = np.zeros(S)
    tolerance = 1e-9 * np.abs(reward).max() / (1 - gamma)
    while True:
        q = (reward + gamma * (kernel @ values)).reshape(S, A)
        new = q.max(axis=1)
        if np.abs(new - values).max() / (1 - gamma) <= tolerance:
            return q.argmax(axis=1)
        values = new


def run_mdptoolbox(task):
    try:
        import mdptoolbox.mdp
    except ImportError:
        return None
    import warnings

    import scipy.sparse as sparse

    S, A = task.n_states, task.n_actions
    kernel = task.transition_matrix
    transitions = [sparse.csr_matrix(kernel[np.arange(S) * A + a]) for a in range(A)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = mdptoolbox.mdp.PolicyIteration(transitions, task.r, task.gamma, eval_type=1)
        solver.run()
    return np.asarray(solver.policy)


def child(spec: dict, contender: str, queue) -> None:
    """Warm up, build, time one contender; put a dict on the queue."""
    from safepce import tabular
    from safepce.tabular.families import random_sparse_cmdp
    from safepce.theory.sweep import tune_process

    tune_process()                                 # single-threaded BLAS, as the CLI runs
    warm = random_sparse_cmdp(50, seed=0)
    tabular.simulate(warm, tabular.solve(warm).policy, 10, 10, seed=0)
    from safepce.tabular.lagrangian import policy_iteration

    policy_iteration(warm, warm.r)
    start = time.process_time()
    task = build(spec)
    out = {"build": time.process_time() - start}
    start = time.process_time()
    if contender == "ours":
        solution = tabular.solve(task)
        out |= {"value": solution.reward_value, "multiplier": float(solution.multipliers),
                "feasible": bool(solution.cost_value <= task.budget),
                "backend": solution.backend}
        out["seconds"] = time.process_time() - start
        out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        if spec["kind"] == "random":
            out |= work(task)
        queue.put(out)
        return
    elif contender == "clarabel":
        out["value"] = run_clarabel(task)
    elif contender in ("simplex", "ipm"):
        out["value"] = run_highs(task, contender)
    elif contender == "linprog":
        out["value"] = run_linprog(task)
    elif contender in ("pi", "vi", "mdptoolbox"):
        actions = (policy_iteration(task, task.r)[0] if contender == "pi"
                   else value_iteration(task) if contender == "vi" else run_mdptoolbox(task))
        if actions is None:
            queue.put({"missing": True})
            return
        seconds = time.process_time() - start
        exact = tabular.evaluate(task, np.eye(task.n_actions)[actions]).reward_value
        queue.put(out | {"seconds": seconds, "value": exact,
                         "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6})
        return
    elif contender == "simulate":
        policy = tabular.solve(task).policy
        start = time.process_time()
        tabular.simulate(task, policy, 1, 1, seed=0)          # builds the sampling tables
        out["tables"] = time.process_time() - start
        start = time.process_time()
        tabular.simulate(task, policy, 1000, 100, seed=1)
        seconds = time.process_time() - start
        queue.put(out | {"seconds": seconds, "steps_per_second": 1e5 / seconds})
        return
    out["seconds"] = time.process_time() - start
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    queue.put(out)


def work(task) -> dict:
    """The solve's work apart from the machine: a second, untimed solve counting its passes over
    a policy's transitions (values and visit backups, operator products, and A per Q-function
    product over the task's kernel; GMRES calls counted apart), and the CPU nanoseconds per
    state of one values backup of a random deterministic policy at this size (the cost of a
    pass, which grows where the vectors leave the caches)."""
    from safepce import tabular
    from safepce.tabular import cmdp, linear

    counts = {"passes": 0, "gmres": 0}
    patched = {}

    def counting(name, weight, key="passes"):
        original = getattr(linear, name)
        patched[name] = original

        def wrapper(*args):
            counts[key] += weight
            return original(*args)
        setattr(linear, name, wrapper)

    for name in ("_backup_span", "_backup_transposed", "_operator_matvec"):
        counting(name, 1)
    counting("_gmres", 1, "gmres")
    next_values = cmdp.CMDP.next_values

    def q_product(self, values):
        counts["passes"] += self.n_actions
        return next_values(self, values)
    cmdp.CMDP.next_values = q_product
    try:
        tabular.solve(task)
    finally:
        cmdp.CMDP.next_values = next_values
        for name, original in patched.items():
            setattr(linear, name, original)
    actions = np.random.default_rng(0).integers(0, task.n_actions, task.n_states)
    system = linear.DiscountedSystem.for_actions(task, actions)
    b = task.r[np.arange(task.n_states), actions]
    x, y = np.zeros(task.n_states), np.empty(task.n_states)
    arguments = (*system._arrays, system.pptr, system.prows, system.pweights, task.gamma, b)
    repeats = max(3, 10**7 // task.n_states)
    start = time.process_time()
    for _ in range(repeats):
        linear._backup_span(*arguments, x, y)
    return counts | {"pass_ns_per_state": (time.process_time() - start) / repeats
                     / task.n_states * 1e9}


def measure(spec: dict, contender: str, timeout: float) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=child, args=(spec, contender, queue))
    process.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:                               # noqa: BLE001 (timeout or a dead child)
        return {"timeout": timeout} if process.is_alive() else {"failed": process.exitcode}
    finally:
        if process.is_alive():
            process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()


def exponent(sizes, times) -> float | None:
    points = [(s, t) for s, t in zip(sizes, times, strict=True) if t]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def cell(result: dict | None, key: str = "seconds", width: int = 9) -> str:
    if result is None or result.get("missing"):
        return f"{'-':>{width}s}"
    if "timeout" in result:
        return f"{'>' + format(result['timeout'], '.0f'):>{width}s}"
    if "failed" in result:
        return f"{'failed':>{width}s}"
    return f"{result[key]:>{width}.3g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*",
                        default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--grids", type=int, nargs="*", default=[50, 200])
    parser.add_argument("--peer-max", type=int, default=10_000,
                        help="largest random size given to the LP peers (all grids are)")
    parser.add_argument("--unconstrained-max", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    specs = [{"kind": "random", "size": s, "seed": args.seed, "S": s} for s in args.sizes]
    specs += [{"kind": "grid", "size": n, "seed": args.seed, "S": n * n} for n in args.grids]
    rows = []
    for spec in specs:
        row = {"spec": spec, "results": {}}
        peers = spec["kind"] == "grid" or spec["S"] <= args.peer_max
        for contender in CONTENDERS if peers else ("ours",):
            row["results"][contender] = measure(spec, contender, args.timeout)
        if spec["S"] <= args.unconstrained_max:
            for contender in UNCONSTRAINED:
                row["results"][contender] = measure(spec, contender, args.timeout)
        row["results"]["simulate"] = measure(spec, "simulate", args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)

    load = os.getloadavg()
    print(f"\nCPU seconds (child processes); load average {load[0]:.2f} on {os.cpu_count()} "
          "cores; ratio = peer / ours; |dV| = relative difference from HiGHS simplex's optimum")
    print(f"{'task':>14s} {'mult':>8s} {'ours':>9s} {'peak GB':>7s} {'clarabel':>9s} "
          f"{'simplex':>9s} {'ipm':>9s} {'linprog':>9s} {'best/ours':>9s} {'|dV|':>8s} "
          f"{'PI':>8s} {'VI':>8s} {'mdptb':>8s} {'VI/PI':>6s} {'tables':>7s} {'steps/s':>9s}")
    for row in rows:
        spec, results = row["spec"], row["results"]
        ours = results["ours"]
        name = (f"random {spec['S']:.0e}" if spec["kind"] == "random"
                else f"grid {spec['size']}x{spec['size']}")
        peers = [results[c] for c in CONTENDERS[1:] if c in results]
        finished = [p["seconds"] for p in peers if "seconds" in p]
        best = min(finished) / ours["seconds"] if finished and "seconds" in ours else None
        if len(finished) < len(peers):                 # a timed-out peer: at least this ratio
            best = min([best or np.inf] + [p["timeout"] / ours["seconds"] for p in peers
                                           if "timeout" in p])
        # against HiGHS's simplex vertex (Clarabel's interior point stops near 1e-8)
        exact = results.get("simplex", {})
        dv = (abs(exact["value"] - ours["value"]) / abs(ours["value"]) if "value" in exact
              and "value" in ours else None)
        vi_ratio = (results["vi"]["seconds"] / results["pi"]["seconds"]
                    if "seconds" in results.get("vi", {}) and "seconds" in results.get("pi", {})
                    else None)
        print(f"{name:>14s} {ours.get('multiplier', float('nan')):>8.3g} {cell(ours)} "
              f"{cell(ours, 'peak_gb', 7)} "
              + " ".join(cell(results.get(c)) for c in CONTENDERS[1:])
              + f" {'-' if best is None else format(best, '.3g'):>9s} "
              f"{'-' if dv is None else format(dv, '.1e'):>8s} "
              f"{cell(results.get('pi'), width=8)} {cell(results.get('vi'), width=8)} "
              f"{cell(results.get('mdptoolbox'), width=8)} "
              f"{'-' if vi_ratio is None else format(vi_ratio, '.3g'):>6s} "
              f"{cell(results.get('simulate'), 'tables', 7)} "
              f"{cell(results.get('simulate'), 'steps_per_second')}")
    random_rows = [r for r in rows if r["spec"]["kind"] == "random"]
    sizes = [r["spec"]["S"] for r in random_rows]
    times = [r["results"]["ours"].get("seconds") for r in random_rows]
    upper = [(s, t) for s, t in zip(sizes, times, strict=True) if s >= 10_000]
    exponents = {"all": exponent(sizes, times),
                 "upper": exponent([s for s, _ in upper], [t for _, t in upper])}
    print("growth exponent of ours (time ~ S^k) on random tasks: "
          + ", ".join(f"{k} sizes {v:.3f}" for k, v in exponents.items() if v is not None))
    counted = [(s, r["results"]["ours"]) for s, r in zip(sizes, random_rows, strict=True)
               if "passes" in r["results"]["ours"]]
    for s, ours in counted:
        print(f"  S = {s:.0e}: {ours['passes']} passes over P_pi ({ours['gmres']} GMRES calls "
              f"apart), {ours['pass_ns_per_state']:.1f} ns per state per pass")
    upper_work = [(s, o["passes"] * s) for s, o in counted if s >= 10_000]
    if len(upper_work) >= 2:
        big = [(s, o) for s, o in counted if s >= 10_000]
        exponents["work_upper"] = exponent([s for s, _ in big], [w for _, w in upper_work])
        exponents["pass_cost_upper"] = exponent([s for s, _ in big],
                                                [o["pass_ns_per_state"] * s for s, o in big])
        print(f"work (passes x S) exponent, S >= 10^4: {exponents['work_upper']:.3f}; "
              f"one pass's time exponent: {exponents['pass_cost_upper']:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_scale.json").write_text(json.dumps(
            {"rows": rows, "exponents": exponents, "load_average": load,
             "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
