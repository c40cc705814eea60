"""Trajectories and Monte-Carlo Q-values / advantages against exact Q^pi and Q^pi - V^pi."""

import numpy as np
import pytest

from safepce import tabular
from safepce.theory.estimators import first_visit_q, returns_to_go


@pytest.fixture(scope="module")
def setting():
    task = tabular.gridworld(0.3)
    policy = 0.7 * tabular.solve(task).policy + 0.3 * tabular.uniform_policy(49, 4)
    exact = tabular.evaluate(task, policy)
    q_reward = task.r + task.gamma * task.P @ exact.reward_state_values
    q_cost = task.cost + task.gamma * task.P @ exact.cost_state_values
    batch = tabular.simulate_trajectories(task, policy, 20_000, 400, seed=11)
    return task, policy, exact, q_reward, q_cost, batch


def test_trajectory_sums_are_simulate_returns():
    task = tabular.gridworld(0.2)
    policy = tabular.uniform_policy(49, 4)
    batch = tabular.simulate_trajectories(task, policy, 300, 200, seed=4, first_episode=7)
    reward, cost = batch.discounted_returns()
    runs = tabular.simulate(task, policy, 300, 200, seed=4, first_episode=7,
                            absorbing_shortcut=False)
    assert np.allclose(reward, runs.reward_return, rtol=1e-12, atol=1e-12)
    assert np.allclose(cost, runs.cost_return, rtol=1e-12, atol=1e-12)
    # transitions in the record are possible under the kernel
    s, a, s_next = batch.states[:, :-1], batch.actions[:, :-1], batch.states[:, 1:]
    assert np.all(task.P[s, a, s_next] > 0)


def test_returns_to_go_by_hand():
    x = np.array([[1.0, 2.0, 3.0]])
    assert returns_to_go(x, 0.5).tolist() == [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]]


@pytest.mark.parametrize("signal", ["reward", "cost"])
def test_first_visit_q_within_monte_carlo_error(setting, signal):
    task, policy, exact, q_reward, q_cost, batch = setting
    estimate = first_visit_q(batch, 49, 4, signal=signal)
    truth = q_reward if signal == "reward" else q_cost
    enough = estimate.counts >= 300
    assert enough.sum() >= 100
    gap = np.abs(estimate.q[enough] - truth[enough])
    error = estimate.standard_error[enough]
    # ~150 pairs: P(some |z| > 5) < 1e-4; pairs whose return never varies have error 0
    assert np.all(gap <= 5 * error + 1e-9), (gap / np.maximum(error, 1e-300)).max()
    assert np.mean(gap <= 2 * error + 1e-9) > 0.85   # most within 2 SE, as a normal would be


def test_advantages_match_exact_q_minus_v(setting):
    task, policy, exact, q_reward, q_cost, batch = setting
    estimate = first_visit_q(batch, 49, 4, signal="reward")
    advantage = estimate.advantages(policy)
    truth = q_reward - exact.reward_state_values[:, None]
    # states whose every action was visited often enough
    rows = np.all(estimate.counts >= 300, axis=1)
    assert rows.sum() >= 10
    bound = 5 * np.sqrt(estimate.standard_error[rows] ** 2
                        + (policy[rows] ** 2 * estimate.standard_error[rows] ** 2).sum(
                            axis=1, keepdims=True))
    assert np.all(np.abs(advantage[rows] - truth[rows]) <= bound + 1e-9)
    # advantages average to zero under the policy, exactly by construction
    assert np.allclose((policy[rows] * advantage[rows]).sum(axis=1), 0.0, atol=1e-9)


def test_every_visit_q_against_a_literal_loop():
    """Every-visit Q and V against a step-by-step loop that sums returns-to-go by hand."""
    from safepce import tabular
    from safepce.theory.estimators import every_visit_q

    task = tabular.random_cmdp(4, 3, 2)
    policy = np.full((4, 3), 1 / 3)
    batch = tabular.simulate_trajectories(task, tabular.Mixture.of([policy], [1.0]), 30, 25,
                                          seed=3)
    estimate = every_visit_q(batch, 4, 3, "cost")
    sums, counts = np.zeros((4, 3)), np.zeros((4, 3))
    state_sums, state_counts = np.zeros(4), np.zeros(4)
    for e in range(30):
        for t in range(25):
            g = sum(task.gamma**(k - t) * batch.costs[e, k] for k in range(t, 25))
            s, a = batch.states[e, t], batch.actions[e, t]
            sums[s, a] += g
            counts[s, a] += 1
            state_sums[s] += g
            state_counts[s] += 1
    taken = counts > 0
    np.testing.assert_allclose(estimate.q[taken], sums[taken] / counts[taken], rtol=1e-12)
    assert np.isnan(estimate.q[~taken]).all()
    np.testing.assert_allclose(estimate.v, state_sums / state_counts, rtol=1e-12)
    advantage = estimate.advantages()
    np.testing.assert_allclose(advantage[taken], (sums / np.where(taken, counts, 1)
                                                  - (state_sums / state_counts)[:, None])[taken],
                               rtol=1e-10, atol=1e-12)
    assert (advantage[~taken] == 0).all()
