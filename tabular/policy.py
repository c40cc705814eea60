"""Stationary Markov policies and episode-level mixtures (Def. 2.3 of the paper).

A policy is an (S, A) row-stochastic array ``pi[s, a] = pi(a | s)``. A :class:`Mixture`
``sum_j w_j pi_j`` is run by drawing ONE index j ~ w per episode and following ``pi_j`` for the
whole episode, so every value of a mixture (reward, cost, occupancy) is exactly the w-weighted
sum of its components' values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cmdp import ROW_SUM_TOLERANCE, InvalidPolicyError, _as_float_array, _check_distributions


def validate_policy(policy, n_states: int, n_actions: int, name: str = "policy") -> np.ndarray:
    """Return ``policy`` as a float64 (S, A) array, or raise :class:`InvalidPolicyError`.

    Checks shape, finiteness, non-negativity and that each row sums to 1 within
    ``ROW_SUM_TOLERANCE``.
    """
    array = _as_float_array(policy, name, (2,), error=InvalidPolicyError)
    if array.shape != (n_states, n_actions):
        raise InvalidPolicyError(name, f"a row-stochastic array of shape (S, A) = "
                                 f"{(n_states, n_actions)}", detail=f"got shape {array.shape}")
    _check_distributions(array, name, error=InvalidPolicyError)
    return array


def validate_policies(policies, n_states: int, n_actions: int,
                      name: str = "policies") -> np.ndarray:
    """Return a stack of policies as a float64 (N, S, A) array, or raise InvalidPolicyError."""
    array = _as_float_array(policies, name, (2, 3), error=InvalidPolicyError)
    if array.ndim == 2:
        array = array[None]
    if array.shape[1:] != (n_states, n_actions) or array.shape[0] == 0:
        raise InvalidPolicyError(name, f"shape (N, S, A) with (S, A) = {(n_states, n_actions)}"
                                 " and N >= 1", detail=f"got shape {array.shape}")
    _check_distributions(array, name, error=InvalidPolicyError)
    return array


@dataclass(frozen=True, eq=False)
class Mixture:
    """Episode-level mixture ``sum_j weights[j] * policies[j]`` (Def. 2.3 of the paper).

    Args:
        policies: (J, S, A) stack, or a sequence of (S, A) policies.
        weights: (J,) non-negative weights summing to 1.
    """

    policies: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        stack = _as_float_array(self.policies, "Mixture.policies", (3,), error=InvalidPolicyError)
        if 0 in stack.shape:
            raise InvalidPolicyError("Mixture.policies", "a non-empty (J, S, A) stack",
                                     detail=f"got shape {stack.shape}")
        _check_distributions(stack, "Mixture.policies", error=InvalidPolicyError)
        weights = _as_float_array(self.weights, "Mixture.weights", (1,), error=InvalidPolicyError)
        if weights.shape != (stack.shape[0],):
            raise InvalidPolicyError("Mixture.weights", f"shape (J,) = ({stack.shape[0]},)",
                                     detail=f"got shape {weights.shape}")
        _check_distributions(weights, "Mixture.weights", error=InvalidPolicyError)
        stack.setflags(write=False)
        weights.setflags(write=False)
        object.__setattr__(self, "policies", stack)
        object.__setattr__(self, "weights", weights)

    @classmethod
    def of(cls, policies: Sequence, weights: Sequence[float]) -> Mixture:
        return cls(np.stack([np.asarray(p, dtype=np.float64) for p in policies]),
                   np.asarray(weights, dtype=np.float64))

    @property
    def n_states(self) -> int:
        return self.policies.shape[1]

    @property
    def n_actions(self) -> int:
        return self.policies.shape[2]


def uniform_policy(n_states: int, n_actions: int) -> np.ndarray:
    """The policy that picks every action with probability 1/A in every state."""
    return np.full((n_states, n_actions), 1.0 / n_actions)


def deterministic_policy(actions, n_actions: int) -> np.ndarray:
    """The (S, A) one-hot policy that plays ``actions[s]`` in state s."""
    actions = np.asarray(actions, dtype=np.int64)
    if actions.ndim != 1 or np.any(actions < 0) or np.any(actions >= n_actions):
        raise InvalidPolicyError("actions", f"a 1-D array of integers in [0, {n_actions})",
                                 detail=f"got {actions!r}")
    policy = np.zeros((actions.size, n_actions))
    policy[np.arange(actions.size), actions] = 1.0
    return policy


__all__ = [
    "Mixture",
    "ROW_SUM_TOLERANCE",
    "deterministic_policy",
    "uniform_policy",
    "validate_policies",
    "validate_policy",
]
