"""Simulator throughput on the paper's gridworld beside a plain-Python rollout, as ratios.

Run: .venv/bin/python benchmarks/bench_simulator.py [--episodes N]

Measures, in one process on one core, the numba simulator with 600-step episodes (every step
simulated, and with the exact absorbing-goal shortcut) and a plain-Python rollout that calls
``numpy.random.Generator.choice`` per step, on the noise-0.3 task with its LP-optimal policy.
"""

import argparse
import time

import numpy as np

from safepce import tabular

HORIZON = 600


def python_rollout(task, policy, n_episodes, horizon, rng):
    """The authors'-style baseline: one Generator.choice per action and per transition."""
    S, A = policy.shape
    returns = np.empty(n_episodes)
    for e in range(n_episodes):
        s = rng.choice(S, p=task.rho)
        total, discount = 0.0, 1.0
        for _ in range(horizon):
            a = rng.choice(A, p=policy[s])
            total += discount * task.r[s, a]
            s = rng.choice(S, p=task.P[s, a])
            discount *= task.gamma
        returns[e] = total
    return returns


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200_000)
    parser.add_argument("--python-episodes", type=int, default=30)
    args = parser.parse_args()

    task = tabular.gridworld(0.3)
    policy = tabular.solve(task).policy
    exact = tabular.evaluate(task, policy).reward_value
    compile_seconds, _ = timed(tabular.simulate, task, policy, 10, HORIZON, seed=0)

    full_seconds, full = timed(tabular.simulate, task, policy, args.episodes, HORIZON, seed=1,
                               absorbing_shortcut=False)
    fast_seconds, fast = timed(tabular.simulate, task, policy, args.episodes, HORIZON, seed=1)
    python_seconds, slow = timed(python_rollout, task, policy, args.python_episodes, HORIZON,
                                 np.random.default_rng(1))

    steps = args.episodes * HORIZON
    rows = [
        ("numba, every step", full_seconds, args.episodes, full.reward_return.mean()),
        ("numba, absorbing shortcut", fast_seconds, args.episodes, fast.reward_return.mean()),
        ("plain Python Generator.choice", python_seconds, args.python_episodes, slow.mean()),
    ]
    print(f"gridworld noise 0.3, LP-optimal policy, {HORIZON}-step episodes; "
          f"exact value {exact:.4f}; first-call compile/cache load {compile_seconds:.2f} s")
    print(f"{'engine':32s} {'episodes':>9s} {'seconds':>8s} {'episodes/s':>12s} "
          f"{'env steps/s':>13s} {'mean return':>12s}")
    for name, seconds, episodes, mean in rows:
        print(f"{name:32s} {episodes:9d} {seconds:8.3f} {episodes / seconds:12.4g} "
              f"{episodes * HORIZON / seconds:13.4g} {mean:12.4f}")
    python_rate = args.python_episodes * HORIZON / python_seconds
    print(f"ratio numba (every step) / plain Python: {steps / full_seconds / python_rate:.0f}x")
    print(f"ratio numba (shortcut) / plain Python, episodes/s: "
          f"{args.episodes / fast_seconds / (args.python_episodes / python_seconds):.0f}x")


if __name__ == "__main__":
    main()
