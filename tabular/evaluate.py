"""Exact policy evaluation by linear solves, in task (cost-form) units.

For a policy pi with ``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` the value of a per-step signal x is
``V_x = (I - gamma P_pi)^{-1} x_pi`` and the normalised state-action occupancy is
``d(s, a) = (1 - gamma) [rho^T (I - gamma P_pi)^{-1}](s) pi(a|s)``, so that
``V_x(rho) = <d, x> / (1 - gamma)``. Mixtures (Def. 2.3 of the paper) are evaluated by linearity.

Dense tasks use dense solves. Sparse tasks (``CMDP.is_sparse``) keep ``P_pi`` sparse and solve
with :class:`safepce.tabular.linear.DiscountedSystem` (Bellman backups, then GMRES, falling back
to one sparse LU reused across right-hand sides), every solve certified to a relative error of
``safepce.tabular.linear.TOLERANCE``
by its residual and ``||(I - gamma P_pi)^{-1}||_inf <= 1 / (1 - gamma)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cmdp import CMDP, InvalidCMDPError, InvalidPolicyError
from .linear import system_for
from .policy import Mixture, validate_policies, validate_policy


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Exact values of one policy on one task, in task units.

    ``cost_value`` and ``cost_state_values`` carry a trailing constraint axis only when the task
    has an (S, A, K) cost; ``slack = budget - cost_value`` (>= 0 iff feasible).
    """

    reward_value: float
    cost_value: float | np.ndarray
    reward_state_values: np.ndarray
    cost_state_values: np.ndarray
    occupancy: np.ndarray
    slack: float | np.ndarray

    @property
    def feasible(self) -> bool:
        """True iff every constraint holds exactly (``cost_value <= budget``)."""
        return bool(np.all(np.asarray(self.slack) >= 0))


def _policy_matrices(cmdp: CMDP, policies: np.ndarray):
    """P_pi (N, S, S), reward (N, S) and cost (N, S, K) under each of N policies."""
    P_pi = np.einsum("nsa,sat->nst", policies, cmdp.P, optimize=True)
    r_pi = np.einsum("nsa,sa->ns", policies, cmdp.r)
    k_pi = np.einsum("nsa,sak->nsk", policies, cmdp.costs)
    return P_pi, r_pi, k_pi


def evaluate(cmdp: CMDP, policy) -> Evaluation:
    """Exact discounted values of ``policy`` (an (S, A) array or a :class:`Mixture`) on ``cmdp``.

    Returns per-state reward and cost values, the values under ``rho``, the normalised
    state-action occupancy (sums to 1) and the budget slack, all in task units.
    Raises :class:`safepce.tabular.InvalidPolicyError` for a policy that is not (S, A)
    row-stochastic.

    Examples
    --------
    >>> from safepce import tabular
    >>> task = tabular.gridworld(0.3)
    >>> exact = tabular.evaluate(task, tabular.solve(task).policy)
    >>> round(exact.reward_value, 4), round(exact.cost_value, 6)
    (51.9628, 1.5)
    >>> round(float(exact.occupancy.sum()), 12)
    1.0
    """
    if isinstance(policy, Mixture):
        _check_mixture_shape(cmdp, policy)
        policies, weights = policy.policies, policy.weights
    else:
        policies = validate_policy(policy, cmdp.n_states, cmdp.n_actions)[None]
        weights = np.ones(1)
    if cmdp.is_sparse:
        state_values, visits = _sparse_solves(cmdp, policies)
    else:
        P_pi, r_pi, k_pi = _policy_matrices(cmdp, policies)
        system = np.eye(cmdp.n_states)[None] - cmdp.gamma * P_pi
        signals = np.concatenate([r_pi[..., None], k_pi], axis=-1)      # (N, S, 1 + K)
        state_values = np.linalg.solve(system, signals)                   # (N, S, 1 + K)
        visits = np.linalg.solve(np.swapaxes(system, 1, 2), np.broadcast_to(
            cmdp.rho, (len(policies), cmdp.n_states))[..., None])[..., 0]  # (N, S)
    occupancy = (1.0 - cmdp.gamma) * visits[..., None] * policies     # (N, S, A)

    state_values = np.einsum("n,nsx->sx", weights, state_values)
    occupancy = np.einsum("n,nsa->sa", weights, occupancy)
    values = cmdp.rho @ state_values
    reward_state_values = state_values[:, 0]
    cost_state_values = state_values[:, 1:]
    cost_value = values[1:]
    slack = cmdp.budgets - cost_value
    if cmdp.single_constraint:
        cost_state_values = cost_state_values[:, 0]
        cost_value = float(cost_value[0])
        slack = float(slack[0])
    return Evaluation(
        reward_value=float(values[0]),
        cost_value=cost_value,
        reward_state_values=reward_state_values,
        cost_state_values=cost_state_values,
        occupancy=occupancy,
        slack=slack,
    )


def _policy_signals(cmdp: CMDP, policy: np.ndarray) -> np.ndarray:
    """(S, 1 + K): the reward and every cost under ``policy``, state by state."""
    return np.concatenate([np.einsum("sa,sa->s", policy, cmdp.r)[:, None],
                           np.einsum("sa,sak->sk", policy, cmdp.costs)], axis=1)


def _sparse_solves(cmdp: CMDP, policies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State values (N, S, 1 + K) and discounted visits (N, S) of each policy, P kept sparse."""
    values, visits = [], []
    for policy in policies:
        system = system_for(cmdp, policy=policy)
        values.append(system.solve(_policy_signals(cmdp, policy)))
        visits.append(system.solve_transposed(cmdp.rho))
    return np.stack(values), np.stack(visits)


@dataclass(frozen=True, eq=False)
class BatchEvaluation:
    """Exact values of N policies on T tasks: ``reward_value`` (T, N), ``cost_value`` (T, N) or
    (T, N, K) (task units), and ``slack = budget - cost_value`` of the same shape."""

    reward_value: np.ndarray
    cost_value: np.ndarray
    slack: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        """(T, N) boolean: policy n meets every budget of task t."""
        slack = self.slack if self.slack.ndim == 2 else self.slack.min(axis=-1)
        return slack >= 0


def evaluate_batch(tasks: Sequence[CMDP] | CMDP, policies, chunk_pairs: int = 512
                   ) -> BatchEvaluation:
    """Exact values of every policy on every task (all tasks share S, A and K).

    Each (task, policy) pair costs one (S x S) solve of ``(I - gamma P_pi)^T x = rho``; the
    values are ``<x, r_pi>`` and ``<x, cost_pi>``. Dense pairs are solved in batches of
    ``chunk_pairs`` to bound memory (about ``chunk_pairs * S^2 * 16`` bytes); sparse tasks one
    pair at a time with ``P_pi`` sparse (memory ~ the kernel's non-zeros).
    """
    if isinstance(tasks, CMDP):
        tasks = [tasks]
    tasks = list(tasks)
    if not tasks:
        raise InvalidCMDPError("tasks", "at least one CMDP")
    first = tasks[0]
    for t, task in enumerate(tasks):
        if not isinstance(task, CMDP):
            raise InvalidCMDPError("tasks", "CMDP instances", index=t,
                                   detail=f"got {type(task).__name__}")
        shape = (task.n_states, task.n_actions, task.n_constraints)
        if shape != (
                first.n_states, first.n_actions, first.n_constraints):
            raise InvalidCMDPError("tasks", "tasks sharing (S, A, K) = "
                                   f"{(first.n_states, first.n_actions, first.n_constraints)}",
                                   index=t, detail=f"got {shape}")
    stack = validate_policies(policies, first.n_states, first.n_actions)
    n_policies, n_states = stack.shape[0], first.n_states
    n_constraints = first.n_constraints
    reward = np.empty((len(tasks), n_policies))
    cost = np.empty((len(tasks), n_policies, n_constraints))
    step = max(1, int(chunk_pairs))
    for t, task in enumerate(tasks):
        if task.is_sparse:
            for n, policy in enumerate(stack):
                system = system_for(task, policy=policy)
                signals = _policy_signals(task, policy)
                visits = system.solve_transposed(task.rho)
                reward[t, n] = visits @ signals[:, 0]
                cost[t, n] = visits @ signals[:, 1:]
            continue
        for start in range(0, n_policies, step):
            chunk = stack[start:start + step]
            P_pi, r_pi, k_pi = _policy_matrices(task, chunk)
            system_t = np.eye(n_states)[None] - task.gamma * np.swapaxes(P_pi, 1, 2)
            rhs = np.broadcast_to(task.rho, (len(chunk), n_states))[..., None]
            visits = np.linalg.solve(system_t, rhs)[..., 0]          # (n, S)
            reward[t, start:start + step] = np.einsum("ns,ns->n", visits, r_pi)
            cost[t, start:start + step] = np.einsum("ns,nsk->nk", visits, k_pi)
    budgets = np.stack([task.budgets for task in tasks])[:, None, :]
    slack = budgets - cost
    if first.single_constraint:
        cost, slack = cost[..., 0], slack[..., 0]
    return BatchEvaluation(reward_value=reward, cost_value=cost, slack=slack)


def _check_mixture_shape(cmdp: CMDP, mixture: Mixture) -> None:
    if (mixture.n_states, mixture.n_actions) != (cmdp.n_states, cmdp.n_actions):
        raise InvalidPolicyError("Mixture.policies", f"policies of shape (S, A) = "
                                 f"{(cmdp.n_states, cmdp.n_actions)}",
                                 detail=f"got {(mixture.n_states, mixture.n_actions)}")
