"""Entropy-regularised ("soft") constrained optima of a finite CMDP.

For a temperature beta > 0 the soft constrained problem is

    maximise    V_r(pi) + beta H(pi),      H(pi) = E[ sum_t gamma^t Ent(pi(.|s_t)) ],  s_0 ~ rho,
    subject to  V_cost(pi) <= b,

with Ent the Shannon entropy in nats and values in task units (unnormalised discounted sums, as
everywhere in :mod:`tabular`). In occupancy measures q(s, a) the entropy term is
``-sum_{s,a} q(s,a) log(q(s,a) / sum_b q(s,b))``, a concave function, so the problem is convex
with a strictly concave objective in the policy: its optimum is unique and, under Slater's
condition (some policy with cost below b), strong duality holds.

Method (exact to the stated tolerance, no gradient steps). For a multiplier u >= 0 the
Lagrangian ``V_r - u V_cost + beta H`` is an entropy-regularised MDP with reward ``r - u cost``;
its optimum ``pi_u(a|s) ∝ exp(Q_u(s, a) / beta)`` is found by soft policy iteration (exact
linear-system evaluation, then the softmax of Q; converges from any start, quadratically near the
fixed point). The dual derivative ``b - V_cost(pi_u)`` is non-decreasing in u (the dual is
convex and differentiable), so the multiplier solving ``V_cost(pi_u) = b`` is found by
bracketing and Brent's method; u = 0 when pi_0 is feasible already. Because the regularised
optimum is unique, no mixing of policies is needed (unlike the unregularised LP).

This is the "soft optimal policy" the authors start LB-SGD from (noise-0.4 gridworld task,
temperature 8; see :mod:`safepce.theory.algorithms.lb_sgd`), computed exactly rather than by
primal-dual iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .cmdp import CMDP, InvalidCMDPError
from .errors import InputError
from .evaluate import evaluate
from .solve import InfeasibleCMDPError, minimum_cost


class SoftSolverError(InputError):
    """A bad argument of the soft solver (names the field and the expected range)."""


@dataclass(frozen=True, eq=False)
class SoftSolution:
    """The soft constrained optimum: policy (S, A), its exact values (task units), its
    discounted entropy (nats), the objective ``V_r + beta H``, the multiplier u of the budget
    and the temperature beta."""

    policy: np.ndarray
    reward_value: float
    cost_value: float
    entropy_value: float
    objective: float
    multiplier: float
    temperature: float


def _entropy(policy: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(policy > 0, -policy * np.log(policy), 0.0)
    return terms.sum(axis=1)


def soft_evaluate(cmdp: CMDP, policy: np.ndarray) -> tuple[float, float, float]:
    """(V_r, V_cost, H) of ``policy`` on a one-constraint ``cmdp``: exact discounted values
    (:func:`safepce.tabular.evaluate`) and the discounted entropy ``E[sum_t gamma^t
    Ent(pi(.|s_t))]``
    (nats), s_0 ~ rho, from the same evaluation's state occupancy."""
    exact = evaluate(cmdp, policy)
    visits = exact.occupancy.sum(axis=1) / (1 - cmdp.gamma)     # unnormalised state occupancy
    return float(exact.reward_value), float(exact.cost_value), float(visits @ _entropy(policy))


def soft_optimal_policy(cmdp: CMDP, temperature: float, multiplier: float = 0.0,
                        tolerance: float = 1e-13, max_iterations: int = 500) -> np.ndarray:
    """The optimum of ``V_r - u V_cost + beta H`` (u = ``multiplier``, beta = ``temperature``)
    by soft policy iteration from the uniform policy: evaluate the policy's soft values exactly
    (a linear solve with per-state signal ``sum_a pi (r - u cost) + beta Ent(pi(.|s))``), then
    ``pi <- softmax(Q / beta)`` with ``Q = r - u cost + gamma P V``; stops when no probability
    moves by more than ``tolerance``."""
    S, A = cmdp.n_states, cmdp.n_actions
    signal = cmdp.r - multiplier * cmdp.costs[..., 0]
    policy = np.full((S, A), 1.0 / A)
    identity = np.eye(S)
    for _ in range(max_iterations):
        P_pi = np.einsum("sa,sat->st", policy, cmdp.dense_P)
        per_state = np.sum(policy * signal, axis=1) + temperature * _entropy(policy)
        values = np.linalg.solve(identity - cmdp.gamma * P_pi, per_state)
        logits = (signal + cmdp.discounted_next_values(values)) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        new = np.exp(logits)
        new /= new.sum(axis=1, keepdims=True)
        change = float(np.max(np.abs(new - policy)))
        policy = new
        if change <= tolerance:
            return policy
    raise RuntimeError(f"soft policy iteration did not converge in {max_iterations} iterations "
                       f"(last change {change:.3g})")


def solve_soft(cmdp: CMDP, temperature: float, tolerance: float = 1e-12) -> SoftSolution:
    """The entropy-regularised constrained optimum (module docstring) of a one-constraint
    ``cmdp`` at temperature beta = ``temperature`` > 0. The budget holds to ``tolerance``
    (relative to max(1, b)); raises :class:`safepce.tabular.InfeasibleCMDPError` when no finite
    multiplier brings the soft optimum within the budget (no Slater point)."""
    if not isinstance(cmdp, CMDP) or not cmdp.single_constraint:
        raise InvalidCMDPError("cmdp", "a tabular.CMDP with one constraint")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise SoftSolverError(f"temperature: expected a positive number; got {temperature!r}")
    if not (isinstance(tolerance, float) and 0 < tolerance < 1e-3):
        raise SoftSolverError(f"tolerance: expected a number in (0, 1e-3); got {tolerance!r}")
    budget = float(cmdp.budgets[0])
    beta = float(temperature)

    def excess(u: float) -> float:
        return soft_evaluate(cmdp, soft_optimal_policy(cmdp, beta, u))[1] - budget

    u = 0.0
    if excess(0.0) > 0:
        lowest = minimum_cost(cmdp)
        if not lowest < budget:          # no Slater point: the dual optimum is not attained
            raise InfeasibleCMDPError(budget, lowest)
        high = 1.0
        while excess(high) > 0:
            high *= 4
            if high > 1e12:
                raise InfeasibleCMDPError(budget, lowest)
        u = brentq(excess, 0.0, high, xtol=1e-15 * max(1.0, high), rtol=8.9e-16, maxiter=500)
        # brentq returns a root to within xtol; step to the feasible side if it landed above
        if excess(u) > tolerance * max(1.0, budget):
            raise RuntimeError(f"the multiplier search ended {excess(u):.3g} above the budget")
    policy = soft_optimal_policy(cmdp, beta, u)
    reward, cost, entropy = soft_evaluate(cmdp, policy)
    return SoftSolution(policy=policy, reward_value=reward, cost_value=cost,
                        entropy_value=entropy, objective=reward + beta * entropy,
                        multiplier=float(u), temperature=beta)
