"""The harness: exact per-episode values, block-size invariance, and the online-only protocol."""

import numpy as np
import pytest

from safepce import tabular
from safepce.theory.harness import Deployment, TestTimeAlgorithm, run_test_phase


class FixedMixture(TestTimeAlgorithm):
    """Deploys one mixture throughout and remembers every return it is shown."""

    name = "fixed"

    def __init__(self, policies, weights, keys, block_hint):
        self.policies, self.weights, self.keys, self.block_hint = policies, weights, keys, \
            block_hint

    def reset(self, n_episodes, seed):
        self.seen_rewards, self.seen_costs = [], []

    def deployment(self):
        return Deployment(tuple(self.policies), np.asarray(self.weights), tuple(self.keys),
                          self.block_hint)

    def observe(self, reward_returns, cost_returns):
        self.seen_rewards.extend(reward_returns)
        self.seen_costs.extend(cost_returns)
        return reward_returns.size


class Switcher(TestTimeAlgorithm):
    """Alternates between two policies whenever the running reward mean crosses a level;
    consumes returns only up to the first switch (the protocol's contract)."""

    name = "switcher"

    def __init__(self, a, b, level):
        self.a, self.b, self.level = a, b, level

    def reset(self, n_episodes, seed):
        self.use_a, self.total, self.count, self.switches = True, 0.0, 0, []

    def deployment(self):
        policy, key = (self.a, "a") if self.use_a else (self.b, "b")
        return Deployment((policy,), np.ones(1), (key,), 10_000)

    def observe(self, reward_returns, cost_returns):
        for i, r in enumerate(reward_returns):
            self.total += r
            self.count += 1
            if (self.total / self.count > self.level) == self.use_a:
                self.use_a = not self.use_a
                self.switches.append(self.count)
                return i + 1
        return reward_returns.size


@pytest.fixture(scope="module")
def gridworld_policies():
    task = tabular.gridworld(0.3)
    return task, tabular.solve(task).policy, tabular.solve(tabular.gridworld(0.4)).policy


def test_exact_values_and_regret(gridworld_policies):
    task, optimal, safe = gridworld_policies
    algorithm = FixedMixture([optimal, safe], [0.25, 0.75], ["opt", "safe"], 5000)
    record = run_test_phase(algorithm, task, 20_000, 600, seed=3)
    exact = tabular.evaluate(task, tabular.Mixture.of([optimal, safe], [0.25, 0.75]))
    assert np.allclose(record.reward_value, exact.reward_value)
    assert np.allclose(record.cost_value, exact.cost_value)
    v_star = tabular.solve(task).reward_value
    assert record.regret[0] == pytest.approx(v_star - exact.reward_value)
    assert record.cumulative_regret[-1] == pytest.approx(20_000 * (v_star - exact.reward_value))
    assert not record.violated.any() and not record.safe_only.any()
    # what the algorithm saw: returns whose mean matches the exact mixture value (4 SE)
    seen = np.array(algorithm.seen_rewards)
    assert abs(seen.mean() - exact.reward_value) < 4 * seen.std() / np.sqrt(seen.size)


def test_results_do_not_depend_on_the_block_size(gridworld_policies):
    task, optimal, safe = gridworld_policies
    level = tabular.evaluate(task, optimal).reward_value
    records = []
    for block in (1, 7, 8192):
        algorithm = Switcher(optimal, safe, level)
        records.append((run_test_phase(algorithm, task, 3000, 600, seed=11, block=block),
                        algorithm.switches))
    for record, switches in records[1:]:
        assert switches == records[0][1]
        assert np.array_equal(record.reward_value, records[0][0].reward_value)
    assert len(records[0][1]) > 3


def test_violations_are_counted_against_the_exact_cost(gridworld_policies):
    task, optimal, safe = gridworld_policies
    unsafe = tabular.solve(tabular.gridworld(0.2)).policy      # infeasible at noise 0.3
    record = run_test_phase(FixedMixture([unsafe], [1.0], ["u"], 1000), task, 2000, 600, seed=0)
    assert tabular.evaluate(task, unsafe).cost_value > 1.5
    assert record.violated.all()
    assert record.constraint_regret == pytest.approx(
        2000 * (tabular.evaluate(task, unsafe).cost_value - 1.5))
    safe_record = run_test_phase(FixedMixture([safe], [1.0], ["safe"], 1000), task, 100, 600, 0)
    assert safe_record.safe_only.all()


def test_bad_arguments(gridworld_policies):
    task, optimal, _ = gridworld_policies
    algorithm = FixedMixture([optimal], [1.0], ["o"], 10)
    with pytest.raises(ValueError, match="^n_episodes"):
        run_test_phase(algorithm, task, 0, 600, seed=0)
    with pytest.raises(ValueError, match="^seed"):
        run_test_phase(algorithm, task, 10, 600, seed=-1)


class TrajectoryRecorder(TestTimeAlgorithm):
    """Asks for trajectories and keeps them."""

    name = "recorder"
    needs_trajectories = True

    def __init__(self, policy):
        self.policy = policy

    def reset(self, n_episodes, seed):
        self.batches = []

    def deployment(self):
        return Deployment((self.policy,), np.ones(1), ("p",), 40)

    def observe(self, reward_returns, cost_returns, trajectories=None):
        self.batches.append((reward_returns, cost_returns, trajectories))
        return reward_returns.size


def test_learners_get_the_trajectories_of_the_episodes_they_ran(gridworld_policies):
    """needs_trajectories: the batch's discounted sums are the returns handed over, and they are
    the same episodes (same streams) that a return-only learner would have seen."""
    task, optimal, _ = gridworld_policies
    recorder = TrajectoryRecorder(tabular.uniform_policy(49, 4))
    run_test_phase(recorder, task, 100, 200, seed=5)
    plain = FixedMixture([tabular.uniform_policy(49, 4)], [1.0], ["p"], 40)
    run_test_phase(plain, task, 100, 200, seed=5)
    rewards = np.concatenate([r for r, _, _ in recorder.batches])
    assert np.allclose(rewards, plain.seen_rewards, rtol=1e-12, atol=1e-12)
    for reward, cost, batch in recorder.batches:
        assert batch.states.shape == (reward.size, 200)
        assert np.allclose(batch.discounted_returns()[0], reward)
        assert np.allclose(batch.discounted_returns()[1], cost)


def test_authors_report_stops_before_the_first_violation():
    """The authors' view of a run: the stored cost and the cumulative regret are 0 from the
    first violating episode on (not stored), the values before it are untouched."""
    import numpy as np

    from safepce.theory.harness import RunRecord, authors_report

    cost = np.array([1.0, 1.2, 1.4, 1.6, 1.0, 1.7])
    reward = np.array([40.0, 41.0, 42.0, 50.0, 43.0, 51.0])
    record = RunRecord("safe-pce", "paper-experiment", 45.0, 1.5, reward, cost,
                       np.zeros(6, bool), 600, 0, 0.0)
    assert record.first_violation_episode == 4
    view = authors_report(record)
    assert view.first_violation_episode == 4
    np.testing.assert_array_equal(view.cost_value, [1.0, 1.2, 1.4, 0, 0, 0])
    np.testing.assert_array_equal(view.cumulative_regret, [5.0, 9.0, 12.0, 0, 0, 0])
    assert not view.violated.any() and view.summary()["final_regret"] == 0.0
    np.testing.assert_array_equal(record.cost_value, cost)          # the full record is kept
    assert record.summary()["violations"] == 2
    clean = RunRecord("x", "", 45.0, 1.5, reward[:3], cost[:3], np.zeros(3, bool), 600, 0, 0.0)
    assert authors_report(clean).first_violation_episode is None
    np.testing.assert_array_equal(authors_report(clean).cumulative_regret,
                                  clean.cumulative_regret)
