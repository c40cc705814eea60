"""The extended (lifted) occupancy LP of DOPE / DOPE+ solved exactly without an LP solver.

The LP of :mod:`safepce.theory.algorithms.dope` optimises jointly over an occupancy and a kernel
``P_tilde`` in the box set ``lower <= P_tilde(.|s,a) <= upper`` (rectangular: one box per pair,
rows summing to 1). For a fixed multiplier lambda >= 0 its Lagrangian

    L(lambda) = max_{pi, P_tilde}  V_{r - lambda cost}(pi, P_tilde) + lambda b

is an optimistic MDP whose "actions" are (a, P_tilde(.|s,a)); for a value function V the best
row of a box is found greedily: start from ``lower`` and pour the free mass ``1 - sum lower``
into next states in decreasing order of V, each up to its ``upper`` (a fractional knapsack,
exact). Policy iteration on that extended MDP (exact evaluation of each (pi, P_tilde), then the
greedy pair and row) reaches its optimum in finitely many steps, since the greedy row is fixed by
the order of V. L is convex and piecewise linear in lambda, and by LP duality its minimum is the
LP's optimum; the multiplier is found as in :mod:`safepce.tabular.lagrangian` (lines of an
infeasible and
a feasible solution crossed until the Lagrangian value at the crossing is no larger than the
lines'), and the LP's solution is the mixture of the two end solutions' (mu, q) that meets the
budget with equality, which is feasible (the lifted feasible set is convex) and optimal (both are
Lagrangian-optimal at lambda*, and complementary slackness holds).

Measured on the gridworld's 9,800-column LP (benchmarks/bench_extended_lp.py): the same optimal
value as Clarabel's and HiGHS's to 1e-7 relative, in a few milliseconds instead of 100-500 ms.
The solution is an optimum of the LP, not necessarily the one an interior-point method returns
when the optimal face is not a point (then the policies differ while the value is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SEARCH_STEPS = 200
_PI_STEPS = 1000
_TIE = 1e-11


@dataclass(frozen=True)
class _Extended:
    policy: np.ndarray      # (S,) deterministic actions
    kernel: np.ndarray      # (S, A, S) the chosen P_tilde of every pair
    visits: np.ndarray      # (S,) discounted state visits from rho (sum 1 / (1 - gamma))
    reward: float
    cost: float
    values: np.ndarray      # (S,) Lagrangian values at the multiplier it was found for


def optimistic_rows(lower: np.ndarray, upper: np.ndarray, values: np.ndarray) -> np.ndarray:
    """argmax over the box set of ``P_tilde(.|s,a) @ values`` for every pair (S, A, S): lower
    bounds plus the free mass poured into next states by decreasing value."""
    order = np.argsort(-values, kind="stable")
    gap = (upper - lower)[..., order]
    free = 1.0 - lower.sum(axis=-1, keepdims=True)
    before = np.cumsum(gap, axis=-1) - gap
    rows = lower.copy()
    rows[..., order] += np.clip(free - before, 0.0, gap)
    return rows


def _evaluate(kernel: np.ndarray, policy: np.ndarray, signal: np.ndarray, gamma: float
              ) -> np.ndarray:
    states = np.arange(policy.size)
    P_pi = kernel[states, policy]
    return np.linalg.solve(np.eye(policy.size) - gamma * P_pi, signal[states, policy])


def _extended_policy_iteration(lower, upper, signal, gamma, policy=None, values=None):
    """The optimal (pi, P_tilde) and values of the optimistic MDP with per-step ``signal``."""
    n_states = signal.shape[0]
    scale = (np.abs(signal).max() or 1.0) / (1.0 - gamma)
    states = np.arange(n_states)
    if values is None:
        values = np.zeros(n_states)
    kernel = optimistic_rows(lower, upper, values)
    if policy is None:
        policy = np.argmax(signal + gamma * kernel @ values, axis=1)
    for _ in range(_PI_STEPS):
        values = _evaluate(kernel, policy, signal, gamma)
        new_kernel = optimistic_rows(lower, upper, values)
        q = signal + gamma * new_kernel @ values
        best = np.argmax(q, axis=1)
        current = signal[states, policy] + gamma * np.einsum("st,t->s", kernel[states, policy],
                                                             values)
        improve = q[states, best] > current + _TIE * scale
        if not improve.any():
            return policy, kernel, values
        policy = np.where(improve, best, policy)
        kernel = np.where(improve[:, None, None], new_kernel, kernel)
    raise RuntimeError("extended policy iteration did not converge")      # pragma: no cover


def _solution(lower, upper, signal, rho, reward, cost, gamma, policy=None, values=None
              ) -> _Extended:
    policy, kernel, lagrangian = _extended_policy_iteration(lower, upper, signal, gamma, policy,
                                                             values)
    states = np.arange(policy.size)
    P_pi = kernel[states, policy]
    visits = np.linalg.solve((np.eye(policy.size) - gamma * P_pi).T, rho)
    return _Extended(policy, kernel, visits, float(visits @ reward[states, policy]),
                     float(visits @ cost[states, policy]), lagrangian)


def _occupancies(solution: _Extended, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.zeros((solution.policy.size, n_actions))
    mu[np.arange(solution.policy.size), solution.policy] = solution.visits
    return mu, mu[..., None] * solution.kernel


def solve_extended(kernel_hat: np.ndarray, width: np.ndarray, rho: np.ndarray,
                   reward: np.ndarray, cost: np.ndarray, budget: float, gamma: float
                   ) -> np.ndarray | None:
    """The LP's solution x = (mu (S*A), q (S*A*S)) by the module docstring's route, or None
    when no (mu, q) meets the budget. Task units: ``reward`` and ``cost`` (S, A) already carry
    their bonuses, ``budget`` bounds the discounted cost; mu is the unnormalised discounted
    occupancy (it sums to 1 / (1 - gamma))."""
    lower = np.clip(kernel_hat - width, 0.0, 1.0)
    upper = np.clip(kernel_hat + width, 0.0, 1.0)
    n_actions = reward.shape[1]
    scale = (np.abs(reward).max() + np.abs(cost).max() + abs(budget) * (1 - gamma)) / (1 - gamma)
    first = _solution(lower, upper, reward, rho, reward, cost, gamma)
    if first.cost <= budget:
        return np.concatenate([part.reshape(-1) for part in _occupancies(first, n_actions)])
    least = _solution(lower, upper, -cost, rho, reward, cost, gamma)
    if least.cost > budget + _TIE * scale:
        return None
    budget = max(budget, least.cost)        # b = the least cost to round-off: that solution
    low, high = first, least
    for _ in range(_SEARCH_STEPS):
        multiplier = max(0.0, (low.reward - high.reward) / (low.cost - high.cost))
        line = low.reward - multiplier * (low.cost - budget)
        found = _solution(lower, upper, reward - multiplier * cost, rho, reward, cost, gamma,
                          high.policy, high.values if high.values.size else None)
        if rho @ found.values + multiplier * budget <= line + _TIE * scale * (1 + multiplier):
            break
        if found.cost > budget:
            low = found
        else:
            high = found
    alpha = (budget - high.cost) / (low.cost - high.cost)          # weight of the infeasible end
    mu_low, q_low = _occupancies(low, n_actions)
    mu_high, q_high = _occupancies(high, n_actions)
    mu = alpha * mu_low + (1 - alpha) * mu_high
    q = alpha * q_low + (1 - alpha) * q_high
    return np.concatenate([mu.reshape(-1), q.reshape(-1)])
