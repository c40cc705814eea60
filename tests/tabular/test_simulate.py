"""The numba simulator against exact evaluation (Monte-Carlo within 4 standard errors)."""

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular import Mixture
from safepce.tabular.simulate import InvalidSimulationError


def _within_4_se(samples, exact):
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    return abs(samples.mean() - exact) <= 4 * se + 1e-12


@pytest.mark.parametrize("shortcut", [True, False])
def test_gridworld_means_match_exact_values(shortcut):
    task = tabular.gridworld(0.3)
    policy = tabular.solve(task).policy
    exact = tabular.evaluate(task, policy)
    result = tabular.simulate(task, policy, 50_000, 600, seed=123, absorbing_shortcut=shortcut)
    assert _within_4_se(result.reward_return, exact.reward_value)
    assert _within_4_se(result.cost_return, exact.cost_value)
    assert result.n_steps == 50_000 * 600


def test_mixture_means_match_exact_values_and_draw_one_component_per_episode():
    task = tabular.gridworld(0.3)
    optimal = tabular.solve(task).policy
    safe = tabular.solve(tabular.gridworld(0.4)).policy
    mixture = Mixture.of([optimal, safe, tabular.uniform_policy(49, 4)], [0.5, 0.3, 0.2])
    exact = tabular.evaluate(task, mixture)
    result = tabular.simulate(task, mixture, 60_000, 600, seed=7)
    assert _within_4_se(result.reward_return, exact.reward_value)
    assert _within_4_se(result.cost_return, exact.cost_value)
    counts = np.bincount(result.component, minlength=3) / result.component.size
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=4 * np.sqrt(0.25 / 60_000))
    # per component, the returns match that component's own exact value
    for j, policy in enumerate([optimal, safe]):
        assert _within_4_se(result.reward_return[result.component == j],
                            tabular.evaluate(task, policy).reward_value)


def test_random_task_with_several_constraints():
    task = tabular.random_cmdp(6, 3, seed=9, n_constraints=2, gamma=0.8)
    policy = np.random.default_rng(1).dirichlet(np.ones(3), size=6)
    exact = tabular.evaluate(task, policy)
    result = tabular.simulate(task, policy, 40_000, 200, seed=np.random.SeedSequence(5))
    assert result.cost_return.shape == (40_000, 2)
    assert _within_4_se(result.reward_return, exact.reward_value)
    for j in range(2):
        assert _within_4_se(result.cost_return[:, j], exact.cost_value[j])


def test_truncated_horizon_matches_the_truncated_exact_value():
    """With H = 3 the mean is E[sum_{t<3} gamma^t r_t], computed exactly by propagation."""
    task = tabular.random_cmdp(4, 2, seed=3, gamma=0.7)
    policy = tabular.uniform_policy(4, 2)
    P_pi = np.einsum("sa,sat->st", policy, task.P)
    r_pi = (policy * task.r).sum(1)
    state = task.rho.copy()
    truncated = 0.0
    for t in range(3):
        truncated += task.gamma**t * state @ r_pi
        state = state @ P_pi
    result = tabular.simulate(task, policy, 100_000, 3, seed=2)
    assert _within_4_se(result.reward_return, truncated)
    assert not _within_4_se(result.reward_return, tabular.evaluate(task, policy).reward_value)


def test_same_seed_same_numbers_whatever_the_blocks():
    task = tabular.gridworld(0.3)
    policy = tabular.solve(task).policy
    whole = tabular.simulate(task, policy, 1000, 600, seed=42)
    again = tabular.simulate(task, policy, 1000, 600, seed=42)
    first = tabular.simulate(task, policy, 400, 600, seed=42)
    rest = tabular.simulate(task, policy, 600, 600, seed=42, first_episode=400)
    other = tabular.simulate(task, policy, 1000, 600, seed=43)
    assert np.array_equal(whole.reward_return, again.reward_return)
    assert np.array_equal(whole.reward_return,
                          np.concatenate([first.reward_return, rest.reward_return]))
    assert np.array_equal(whole.cost_return, np.concatenate([first.cost_return, rest.cost_return]))
    assert not np.array_equal(whole.reward_return, other.reward_return)


def test_absorbing_shortcut_is_exact_per_episode():
    """The shortcut changes only how the deterministic tail is summed: per episode, the returns
    agree with the step-by-step rollout up to round-off (same random stream until the goal)."""
    task = tabular.gridworld(0.2)
    policy = tabular.solve(task).policy
    fast = tabular.simulate(task, policy, 2000, 600, seed=5, absorbing_shortcut=True)
    slow = tabular.simulate(task, policy, 2000, 600, seed=5, absorbing_shortcut=False)
    assert np.allclose(fast.reward_return, slow.reward_return, rtol=1e-12, atol=1e-9)
    assert np.allclose(fast.cost_return, slow.cost_return, rtol=1e-12, atol=1e-9)


def test_generator_seed_is_advanced():
    task = tabular.gridworld(0.3)
    rng = np.random.default_rng(0)
    a = tabular.simulate(task, tabular.uniform_policy(49, 4), 10, 50, seed=rng)
    b = tabular.simulate(task, tabular.uniform_policy(49, 4), 10, 50, seed=rng)
    assert not np.array_equal(a.reward_return, b.reward_return)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(n_episodes=-1), "n_episodes"),
        (dict(n_episodes=2.5), "n_episodes"),
        (dict(horizon=0), "horizon"),
        (dict(seed=-3), "seed"),
        (dict(seed="abc"), "seed"),
        (dict(first_episode=-1), "first_episode"),
    ],
)
def test_bad_arguments_are_named(kwargs, field):
    arguments = dict(n_episodes=5, horizon=10, seed=0)
    arguments.update(kwargs)
    with pytest.raises(InvalidSimulationError, match=f"^{field}") as info:
        tabular.simulate(tabular.gridworld(0.1), tabular.uniform_policy(49, 4), **arguments)
    assert isinstance(info.value, ValueError)


def test_successor_order_is_the_three_key_sort():
    """The per-row insertion sort of the sampling tables gives numpy's lexsort order (likeliest
    first, ties by state) on a random task and on a gridworld, whose rows tie."""
    from safepce.tabular.families import random_sparse_cmdp, sparse_gridworld
    from safepce.tabular.simulate import successor_order

    for task in (random_sparse_cmdp(2000, seed=1), sparse_gridworld(0.3, 12)):
        k = task.transition_matrix
        rows = np.repeat(np.arange(k.shape[0]), np.diff(k.indptr))
        expected = np.lexsort((k.indices, -k.data, rows))
        assert np.array_equal(successor_order(k.indptr.astype(np.int64), k.indices, k.data),
                              expected)
