"""The exact distribution of one episode's outcome, for tasks whose episodes have few outcomes.

An episode of ``horizon`` steps under a fixed policy (or an episode-level mixture, Def. 2.3 of
the paper) returns ``R = sum_{t<H} gamma^t r(s_t, a_t)`` and ``C = sum_{t<H} gamma^t cost(s_t,
a_t)`` (Eq. 4), the same truncated returns as :func:`safepce.tabular.simulate`. Where the
episodes can end in only a few distinct (R, C, visits) outcomes (the hard family of App. G: a
path to a gate, a loop of geometric length, a sink), :func:`episode_outcomes` lists them with
their exact probabilities by a forward pass over (state, partial returns, visits), merging equal
keys and closing a path as soon as it enters an absorbing state (every action stays and pays the
same, so the rest of the episode is a geometric sum). ``visits`` counts the steps t < H spent in
the states of ``count_mask`` (one sample of some transition (s, a) each), e.g. the loop states
whose samples Theorem 5.1's lower bound counts.

A draw from the returned categorical distribution has exactly the law of one simulated episode,
so n i.i.d. episodes can be drawn as one multinomial vector of outcome counts
(:mod:`safepce.theory.exact_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cmdp import CMDP, InvalidCMDPError
from .errors import InputError, positive_int
from .policy import Mixture, validate_policy

#: refuse to enumerate more distinct outcomes than this (the task is not a few-outcome task)
MAX_OUTCOMES = 200_000


class TooManyOutcomesError(InputError):
    """The episode has more distinct outcomes than the enumeration allows."""


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Distinct episode outcomes: ``probability`` (J,) summing to 1, ``reward_return`` (J,),
    ``cost_return`` (J,) (task units, the task's single constraint) and ``visits`` (J,) int."""

    probability: np.ndarray
    reward_return: np.ndarray
    cost_return: np.ndarray
    visits: np.ndarray

    @property
    def size(self) -> int:
        return int(self.probability.size)

    def mean(self) -> tuple[float, float, float]:
        """Exact expected (reward return, cost return, visits) of one episode."""
        p = self.probability
        return (float(p @ self.reward_return), float(p @ self.cost_return),
                float(p @ self.visits))


def _cost(cmdp: CMDP) -> np.ndarray:
    return cmdp.cost if cmdp.cost.ndim == 2 else cmdp.cost[:, :, 0]


def _absorbing(cmdp: CMDP, T) -> np.ndarray:
    """States where every action stays put with probability 1 and pays the same reward/cost."""
    S, A = cmdp.n_states, cmdp.n_actions
    diagonal = np.asarray(T[np.arange(S * A), np.repeat(np.arange(S), A)]).reshape(S, A)
    stays = np.all(diagonal == 1.0, axis=1)
    cost = _cost(cmdp)
    same_reward = np.all(cmdp.r == cmdp.r[:, :1], axis=1)
    same_cost = np.all(cost == cost[:, :1], axis=1)
    return stays & same_reward & same_cost


def _policy_outcomes(cmdp: CMDP, T, policy: np.ndarray, horizon: int, count: np.ndarray,
                     absorbing: np.ndarray, limit: int) -> dict:
    gamma, A = cmdp.gamma, cmdp.n_actions
    r, cost = cmdp.r, _cost(cmdp)
    finished: dict[tuple, float] = {}
    frontier: dict[tuple, float] = {}
    for s in np.flatnonzero(cmdp.rho > 0):
        frontier[(int(s), 0.0, 0.0, 0)] = float(cmdp.rho[s])
    discount = 1.0
    for t in range(horizon):
        following: dict[tuple, float] = {}
        for (s, R, C, v), p in frontier.items():
            if absorbing[s]:
                tail = discount * (1.0 - gamma ** (horizon - t)) / (1.0 - gamma)
                key = (R + tail * r[s, 0], C + tail * cost[s, 0],
                       v + (horizon - t) * int(count[s]))
                finished[key] = finished.get(key, 0.0) + p
                continue
            for a in np.flatnonzero(policy[s] > 0):
                pa = p * policy[s, a]
                R2, C2 = R + discount * r[s, a], C + discount * cost[s, a]
                v2 = v + int(count[s])
                row = s * A + a
                for i in range(T.indptr[row], T.indptr[row + 1]):
                    if T.data[i] > 0:
                        key = (int(T.indices[i]), R2, C2, v2)
                        following[key] = following.get(key, 0.0) + pa * T.data[i]
        frontier = following
        discount *= gamma
        if len(frontier) + len(finished) > limit:
            raise TooManyOutcomesError(
                f"policy: the episode has more than {limit} distinct outcomes by step {t + 1}; "
                "simulate it instead (tabular.simulate)")
    for (_, R, C, v), p in frontier.items():
        finished[(R, C, v)] = finished.get((R, C, v), 0.0) + p
    return finished


def episode_outcomes(cmdp: CMDP, policy, horizon: int, count_mask=None,
                     max_outcomes: int = MAX_OUTCOMES) -> Outcomes:
    """Every distinct outcome (R, C, visits) of one episode of ``horizon`` steps under ``policy``
    (an (S, A) array or a :class:`safepce.tabular.Mixture`) and its exact probability.

    ``count_mask``: boolean (S,) mask of the states whose steps are counted in ``visits``
    (default: none). Raises :class:`TooManyOutcomesError` beyond ``max_outcomes`` outcomes."""
    if not isinstance(cmdp, CMDP) or not cmdp.single_constraint:
        raise InvalidCMDPError("cmdp", "a tabular.CMDP with one constraint")
    positive_int("horizon", horizon)
    positive_int("max_outcomes", max_outcomes)
    if count_mask is None:
        count = np.zeros(cmdp.n_states, dtype=bool)
    else:
        count = np.asarray(count_mask)
        if count.dtype != bool or count.shape != (cmdp.n_states,):
            raise InputError(f"count_mask: expected a boolean array of shape ({cmdp.n_states},); "
                             f"got {count.dtype} {count.shape}")
    if isinstance(policy, Mixture):
        components = [(w, p) for w, p in zip(policy.weights, policy.policies, strict=True)
                      if w > 0]
    else:
        components = [(1.0, validate_policy(policy, cmdp.n_states, cmdp.n_actions))]
    T = cmdp.transition_matrix.tocsr()
    absorbing = _absorbing(cmdp, T)
    merged: dict[tuple, float] = {}
    for weight, component in components:
        for key, p in _policy_outcomes(cmdp, T, np.asarray(component), int(horizon), count,
                                       absorbing, max_outcomes).items():
            merged[key] = merged.get(key, 0.0) + weight * p
    keys = sorted(merged)
    probability = np.array([merged[k] for k in keys])
    probability /= probability.sum()            # round-off only: the masses sum to 1 exactly
    return Outcomes(probability=probability,
                    reward_return=np.array([k[0] for k in keys], dtype=np.float64),
                    cost_return=np.array([k[1] for k in keys], dtype=np.float64),
                    visits=np.array([k[2] for k in keys], dtype=np.int64))


def mix_outcomes(weighted) -> Outcomes:
    """The outcomes of an episode-level mixture (Def. 2.3) from its components' outcomes:
    ``weighted`` is a sequence of (weight, :class:`Outcomes`); an outcome shared by two
    components is listed twice (the law is the same)."""
    parts = [(float(w), o) for w, o in weighted if w > 0]
    if not parts:
        raise InputError("weighted: expected at least one component with a positive weight")
    probability = np.concatenate([w * o.probability for w, o in parts])
    return Outcomes(probability=probability / probability.sum(),
                    reward_return=np.concatenate([o.reward_return for _, o in parts]),
                    cost_return=np.concatenate([o.cost_return for _, o in parts]),
                    visits=np.concatenate([o.visits for _, o in parts]))
