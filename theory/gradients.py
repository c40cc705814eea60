"""Policy gradients of a softmax policy ``pi(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b])``.

* :func:`exact_gradient`: the policy-gradient theorem on exact quantities,
  ``dV_x/dtheta(s, a) = d(s) pi(a|s) (Q_x(s, a) - V_x(s)) / (1 - gamma)`` with d the normalised
  discounted state occupancy from rho (task units).
* :func:`barrier_gradient`: the gradient of LB-SGD's log-barrier objective
  ``V_r(theta) + eta log(b - V_cost(theta))`` (Ni & Kamgarpour, AISTATS 2025), i.e.
  ``grad V_r - eta grad V_cost / (b - V_cost)``; defined only strictly inside the budget.
* :func:`reinforce_gradient`: the Monte-Carlo estimate from trajectories,
  ``mean_n sum_t gamma^t G_t grad log pi(a_t|s_t)`` with returns-to-go G_t (truncated at H), and
  its per-coordinate standard errors.
"""

from __future__ import annotations

import numba
import numpy as np

from safepce import tabular
from safepce.tabular import CMDP
from safepce.tabular.simulate import TrajectoryBatch

from .estimators import episode_returns


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def exact_gradient(cmdp: CMDP, logits: np.ndarray, signal: str = "reward",
                   constraint: int = 0) -> tuple[float, np.ndarray]:
    """(V_x, dV_x/dlogits) of the softmax policy for x = reward or a cost (task units)."""
    policy = softmax(logits)
    exact = tabular.evaluate(cmdp, policy)
    if signal == "reward":
        x, state_values, value = cmdp.r, exact.reward_state_values, exact.reward_value
    elif signal == "cost":
        x = cmdp.costs[..., constraint]
        state_values = np.reshape(exact.cost_state_values, (cmdp.n_states, -1))[:, constraint]
        value = float(np.atleast_1d(exact.cost_value)[constraint])
    else:
        raise ValueError(f"signal: expected 'reward' or 'cost'; got {signal!r}")
    q = x + cmdp.discounted_next_values(state_values)
    occupancy = exact.occupancy.sum(axis=1)
    gradient = occupancy[:, None] * policy * (q - state_values[:, None]) / (1 - cmdp.gamma)
    return float(value), gradient


def barrier_gradient(cmdp: CMDP, logits: np.ndarray, eta: float) -> tuple[float, np.ndarray]:
    """(objective, gradient) of ``V_r + eta log(b - V_cost)``; ValueError outside the budget."""
    reward, grad_reward = exact_gradient(cmdp, logits, "reward")
    cost, grad_cost = exact_gradient(cmdp, logits, "cost")
    slack = float(cmdp.budgets[0]) - cost
    if slack <= 0:
        raise ValueError(f"logits: the log barrier needs V_cost < budget; got slack {slack:.3g}")
    return reward + eta * np.log(slack), grad_reward - eta * grad_cost / slack


@numba.njit(cache=True)
def _episode_sums(states, actions, signal, gamma, discount, per_episode, visits):
    """Each step's weight gamma^t G_t (G_t as in :func:`returns_to_go`) added to its episode's
    (state, action) and state, in step order."""
    returns = np.empty(states.shape[1])
    for e in range(states.shape[0]):
        episode_returns(signal[e], gamma, returns)
        for t in range(states.shape[1]):
            s = states[e, t]
            weight = returns[t] * discount[t]
            per_episode[e, s, actions[e, t]] += weight
            visits[e, s] += weight


def reinforce_gradient(batch: TrajectoryBatch, logits: np.ndarray, signal: str = "reward",
                       constraint: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, standard error) of dV_x/dlogits from trajectories of the softmax policy.

    For the softmax, ``d log pi(a|s) / d theta[s, b] = 1[a = b] - pi(b|s)``, so each step adds
    ``gamma^t G_t (e_a - pi(.|s))`` to row s.
    """
    policy = softmax(logits)
    x = batch.rewards if signal == "reward" else (
        batch.costs if batch.costs.ndim == 2 else batch.costs[..., constraint])
    n_episodes = x.shape[0]
    S, A = policy.shape
    per_episode = np.zeros((n_episodes, S, A))
    visits = np.zeros((n_episodes, S))
    _episode_sums(batch.states, batch.actions, np.asarray(x, dtype=np.float64),
                  float(batch.gamma), batch.gamma ** np.arange(x.shape[1]), per_episode, visits)
    per_episode -= visits[:, :, None] * policy[None]
    return per_episode.mean(axis=0), per_episode.std(axis=0, ddof=1) / np.sqrt(n_episodes)
