"""Monte-Carlo estimators that test-time learners build from trajectories (task units).

First-visit Monte-Carlo: in each episode, the first time t a pair (s, a) is taken contributes the
discounted return-to-go ``G_t = sum_{k >= t} gamma^(k-t) x_k`` of the signal x (reward or a cost).
Samples from different episodes are independent, so ``q`` is unbiased for ``Q^pi(s, a)`` (up to
the horizon's truncation, kept below ``truncation`` by ignoring first visits too close to the
end) and ``standard_error`` is an honest standard error. Advantages use the policy itself:
``A(s, a) = Q(s, a) - sum_b pi(b|s) Q(s, b)``.

The per-step loops (returns-to-go, the every-visit sums) are small numba kernels that add in the
same order as the numpy expressions they replaced (``np.bincount`` adds in index order), so their
results are the same bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from safepce.tabular.simulate import TrajectoryBatch


@dataclass(frozen=True, eq=False)
class QEstimate:
    """``q`` (S, A) Monte-Carlo Q-values (NaN where never visited), ``counts`` (S, A) of
    first visits used, ``standard_error`` (S, A)."""

    q: np.ndarray
    counts: np.ndarray
    standard_error: np.ndarray

    def advantages(self, policy: np.ndarray) -> np.ndarray:
        """``Q(s, a) - sum_b pi(b|s) Q(s, b)``; NaN where a needed Q-value is missing."""
        weighted = np.where(policy > 0, self.q, 0.0)
        missing = np.any((policy > 0) & np.isnan(self.q), axis=1, keepdims=True)
        value = np.where(missing, np.nan, np.sum(policy * np.nan_to_num(weighted), axis=1,
                                                 keepdims=True))
        return self.q - value


@numba.njit(cache=True, inline="always")
def episode_returns(signal_row, gamma, out):
    """out[t] = G_t = x_t + gamma G_{t+1} over one episode's steps (truncated at the horizon);
    the one place the recursion is written (the kernels below and theory.gradients use it)."""
    running = 0.0
    for t in range(signal_row.size - 1, -1, -1):
        running = signal_row[t] + gamma * running
        out[t] = running


@numba.njit(cache=True)
def _returns_to_go(signal, gamma, out):
    for e in range(signal.shape[0]):
        episode_returns(signal[e], gamma, out[e])


def returns_to_go(signal: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = x_t + gamma G_{t+1} along axis 1 (episodes x steps), truncated at the horizon."""
    signal = np.asarray(signal, dtype=np.float64)
    out = np.empty(signal.shape)
    _returns_to_go(signal, float(gamma), out)
    return out


@numba.njit(cache=True)
def _every_visit_sums(states, actions, signal, gamma, n_actions, pair_sums, pair_counts,
                      state_sums, state_counts):
    """Every step's return-to-go (computed per episode as in :func:`returns_to_go`) added to
    its pair and its state, in (episode, step) order."""
    returns = np.empty(states.shape[1])
    for e in range(states.shape[0]):
        episode_returns(signal[e], gamma, returns)
        for t in range(states.shape[1]):
            s = states[e, t]
            pair = s * n_actions + actions[e, t]
            pair_sums[pair] += returns[t]
            pair_counts[pair] += 1.0
            state_sums[s] += returns[t]
            state_counts[s] += 1.0


def first_visit_q(batch: TrajectoryBatch, n_states: int, n_actions: int,
                  signal: str = "reward", constraint: int = 0,
                  truncation: float = 1e-8) -> QEstimate:
    """First-visit Monte-Carlo Q-values of ``signal`` ("reward" or "cost", constraint index
    ``constraint``) from a batch of trajectories of one policy.

    First visits later than ``H - ln(truncation)/ln(1/gamma)`` steps are ignored, so the
    truncation bias is below ``truncation * max|x| / (1 - gamma)``.
    """
    if signal not in ("reward", "cost"):
        raise ValueError(f"signal: expected 'reward' or 'cost'; got {signal!r}")
    x = batch.rewards if signal == "reward" else (
        batch.costs if batch.costs.ndim == 2 else batch.costs[..., constraint])
    G = returns_to_go(x, batch.gamma)
    horizon = x.shape[1]
    last_start = horizon - math.ceil(math.log(truncation) / math.log(batch.gamma))
    if last_start <= 0:
        raise ValueError(f"truncation: episodes of {horizon} steps are too short for a "
                         f"truncation of {truncation:g} at gamma {batch.gamma}")
    pairs = batch.states[:, :last_start] * n_actions + batch.actions[:, :last_start]
    sums = np.zeros(n_states * n_actions)
    squares = np.zeros(n_states * n_actions)
    counts = np.zeros(n_states * n_actions)
    for e in range(pairs.shape[0]):
        first_pairs, first_steps = np.unique(pairs[e], return_index=True)
        samples = G[e, first_steps]
        np.add.at(sums, first_pairs, samples)
        np.add.at(squares, first_pairs, samples**2)
        np.add.at(counts, first_pairs, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
        variance = np.maximum(squares / counts - mean**2, 0.0) * counts / np.maximum(counts - 1, 1)
        error = np.sqrt(variance / counts)
    shape = (n_states, n_actions)
    return QEstimate(q=mean.reshape(shape), counts=counts.reshape(shape).astype(np.int64),
                     standard_error=error.reshape(shape))


@dataclass(frozen=True, eq=False)
class EveryVisitEstimate:
    """Every-visit Monte-Carlo estimates: ``q`` (S, A) the average return-to-go over every step
    at which (s, a) was taken (NaN where never taken), ``v`` (S,) the average over every step
    at which s was visited (NaN where never visited), and the visit counts."""

    q: np.ndarray
    v: np.ndarray
    pair_counts: np.ndarray
    state_counts: np.ndarray

    def advantages(self) -> np.ndarray:
        """``A = Q - V`` on the pairs taken, 0 elsewhere (the authors' Safe Meta-RL)."""
        taken = self.pair_counts > 0
        return np.where(taken, np.nan_to_num(self.q) - np.nan_to_num(self.v)[:, None], 0.0)


def every_visit_q(batch: TrajectoryBatch, n_states: int, n_actions: int,
                  signal: str = "reward", constraint: int = 0) -> EveryVisitEstimate:
    """Every-visit Monte-Carlo Q(s, a) and V(s) of ``signal`` from a batch of trajectories:
    every step t of every episode contributes its truncated return-to-go ``G_t`` to its pair
    and to its state (steps near the horizon included, so late visits carry truncated returns,
    as in the authors' estimator). Unlike :func:`first_visit_q` the samples of one episode are
    correlated, so no standard error is given."""
    if signal not in ("reward", "cost"):
        raise ValueError(f"signal: expected 'reward' or 'cost'; got {signal!r}")
    x = batch.rewards if signal == "reward" else (
        batch.costs if batch.costs.ndim == 2 else batch.costs[..., constraint])
    pair_sums, pair_counts = np.zeros(n_states * n_actions), np.zeros(n_states * n_actions)
    state_sums, state_counts = np.zeros(n_states), np.zeros(n_states)
    _every_visit_sums(batch.states, batch.actions, np.asarray(x, dtype=np.float64),
                      float(batch.gamma), n_actions, pair_sums, pair_counts, state_sums,
                      state_counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = pair_sums / pair_counts
        v = state_sums / state_counts
    return EveryVisitEstimate(q=q.reshape(n_states, n_actions), v=v,
                              pair_counts=pair_counts.reshape(n_states, n_actions).astype(np.int64),
                              state_counts=state_counts.astype(np.int64))
