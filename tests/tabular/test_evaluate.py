"""Exact evaluation against fixed-point iteration, linearity of mixtures, and the batched form."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.tabular import InvalidPolicyError, Mixture


def _random_policy(rng, S, A):
    return rng.dirichlet(np.ones(A), size=S)


def _fixed_point_values(task, policy, iterations=3000):
    """V <- x_pi + gamma P_pi V by plain iteration (independent of the linear solve)."""
    P_pi = np.array([[policy[s] @ task.P[s, :, t] for t in range(task.n_states)]
                     for s in range(task.n_states)])
    signals = np.column_stack([(policy * task.r).sum(1)]
                              + [(policy * task.costs[..., j]).sum(1)
                                 for j in range(task.n_constraints)])
    V = np.zeros_like(signals)
    for _ in range(iterations):
        V = signals + task.gamma * P_pi @ V
    return V


@given(seed=st.integers(0, 2**32 - 1), K=st.sampled_from([None, 2]))
def test_values_match_fixed_point_iteration(seed, K):
    rng = np.random.default_rng(seed)
    task = tabular.random_cmdp(5, 3, seed=rng, n_constraints=K, gamma=0.8)
    policy = _random_policy(rng, 5, 3)
    exact = tabular.evaluate(task, policy)
    V = _fixed_point_values(task, policy)
    assert np.allclose(exact.reward_state_values, V[:, 0], atol=1e-10)
    assert np.allclose(np.reshape(exact.cost_state_values, (5, -1)), V[:, 1:], atol=1e-10)
    assert exact.reward_value == pytest.approx(task.rho @ V[:, 0], abs=1e-10)
    # occupancy identity: V_x(rho) = <d, x> / (1 - gamma), and d is a distribution
    assert exact.occupancy.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.sum(exact.occupancy * task.r) / (1 - task.gamma) == pytest.approx(
        exact.reward_value, abs=1e-10)
    assert np.allclose(np.asarray(exact.slack), task.budgets - np.atleast_1d(exact.cost_value))


def test_mixture_values_are_linear_in_the_weights():
    rng = np.random.default_rng(0)
    task = tabular.random_cmdp(6, 3, seed=1)
    policies = [_random_policy(rng, 6, 3) for _ in range(3)]
    weights = np.array([0.2, 0.5, 0.3])
    mixed = tabular.evaluate(task, Mixture.of(policies, weights))
    parts = [tabular.evaluate(task, p) for p in policies]
    pairs = list(zip(weights, parts, strict=True))
    assert mixed.reward_value == pytest.approx(sum(w * e.reward_value for w, e in pairs))
    assert mixed.cost_value == pytest.approx(sum(w * e.cost_value for w, e in pairs))
    assert np.allclose(mixed.occupancy, sum(w * e.occupancy for w, e in pairs))


def test_batch_equals_one_at_a_time():
    rng = np.random.default_rng(2)
    tasks = [tabular.gridworld(p) for p in (0.1, 0.25, 0.4)]
    policies = np.stack([_random_policy(rng, 49, 4) for _ in range(7)])
    batch = tabular.evaluate_batch(tasks, policies, chunk_pairs=3)
    assert batch.reward_value.shape == (3, 7) and batch.cost_value.shape == (3, 7)
    for t, task in enumerate(tasks):
        for n, policy in enumerate(policies):
            exact = tabular.evaluate(task, policy)
            assert batch.reward_value[t, n] == pytest.approx(exact.reward_value, abs=1e-10)
            assert batch.cost_value[t, n] == pytest.approx(exact.cost_value, abs=1e-10)
    assert np.array_equal(batch.feasible, batch.cost_value <= 1.5)


def test_batch_with_several_constraints():
    task = tabular.random_cmdp(4, 2, seed=5, n_constraints=3)
    policies = np.stack([tabular.uniform_policy(4, 2),
                         tabular.deterministic_policy([0, 1, 0, 1], 2)])
    batch = tabular.evaluate_batch(task, policies)
    assert batch.cost_value.shape == (1, 2, 3)
    assert np.allclose(batch.cost_value[0, 1], tabular.evaluate(task, policies[1]).cost_value)


@pytest.mark.parametrize(
    ("policy", "phrase"),
    [
        (np.full((49, 3), 1 / 3), "shape (S, A)"),
        (np.full((49, 4), 0.3), "sum"),
        (np.where(np.arange(4) == 0, 1.5, -0.5 / 3) * np.ones((49, 1)), "non-negative"),
        (np.full((49, 4), np.nan), "finite"),
        ("abc", "numeric"),
    ],
)
def test_bad_policies_are_rejected(policy, phrase):
    with pytest.raises(InvalidPolicyError, match=re.escape(phrase)) as info:
        tabular.evaluate(tabular.gridworld(0.1), policy)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("policy")


def test_bad_mixtures_are_rejected():
    pi = tabular.uniform_policy(3, 2)
    with pytest.raises(InvalidPolicyError, match="^Mixture.weights"):
        Mixture.of([pi, pi], [0.5, 0.6])
    with pytest.raises(InvalidPolicyError, match="^Mixture.weights"):
        Mixture.of([pi, pi], [1.0])
    with pytest.raises(InvalidPolicyError, match="^Mixture.policies"):
        tabular.evaluate(tabular.gridworld(0.1), Mixture.of([pi], [1.0]))
