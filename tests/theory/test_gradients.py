"""Policy gradients against finite differences of exact values, and REINFORCE against them."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.theory.gradients import (
    barrier_gradient,
    exact_gradient,
    reinforce_gradient,
    softmax,
)


def _finite_difference(function, logits, h=1e-6):
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (function(up) - function(down)) / (2 * h)
    return grad


@given(seed=st.integers(0, 2**32 - 1), signal=st.sampled_from(["reward", "cost"]))
def test_exact_gradient_equals_finite_differences(seed, signal):
    rng = np.random.default_rng(seed)
    task = tabular.random_cmdp(4, 3, seed=rng, gamma=0.8)
    logits = rng.normal(size=(4, 3))
    value, gradient = exact_gradient(task, logits, signal)

    def v(z):
        exact = tabular.evaluate(task, softmax(z))
        return exact.reward_value if signal == "reward" else exact.cost_value

    assert value == pytest.approx(v(logits))
    assert np.allclose(gradient, _finite_difference(v, logits), atol=1e-6, rtol=1e-5)


def test_barrier_gradient_equals_finite_differences():
    task = tabular.random_cmdp(5, 3, seed=2, gamma=0.85)
    task = task.with_budget(task.budget * 1.2)           # strictly feasible start
    logits = np.zeros((5, 3))

    def objective(z):
        exact = tabular.evaluate(task, softmax(z))
        return exact.reward_value + 0.1 * np.log(task.budget - exact.cost_value)

    value, gradient = barrier_gradient(task, logits, 0.1)
    assert value == pytest.approx(objective(logits))
    assert np.allclose(gradient, _finite_difference(objective, logits), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="^logits"):
        barrier_gradient(task.with_budget(0.0), logits, 0.1)


def test_reinforce_is_unbiased_within_monte_carlo_error():
    task = tabular.random_cmdp(4, 3, seed=5, gamma=0.7)
    logits = np.random.default_rng(1).normal(size=(4, 3))
    batch = tabular.simulate_trajectories(task, softmax(logits), 40_000, 80, seed=3)
    for signal in ("reward", "cost"):
        estimate, error = reinforce_gradient(batch, logits, signal)
        _, exact = exact_gradient(task, logits, signal)
        # 12 coordinates: P(some |z| > 4.5) < 1e-4; the horizon's truncation is 0.7^80 ~ 4e-13
        assert np.all(np.abs(estimate - exact) <= 4.5 * error + 1e-9)
