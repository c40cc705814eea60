"""safepce.theory.testing's checkers raise exactly when the guarantee fails, with numbers computed
here: a fixed-policy algorithm's regret is K (V* - V(pi)) and pi_out's gap is V* - V(pi)."""

import numpy as np
import pytest

from safepce import tabular
from safepce.theory.harness import Deployment, TestTimeAlgorithm
from safepce.theory.testing import check_output_accuracy, check_regret_bound, check_safe_exploration


class Fixed(TestTimeAlgorithm):
    name = "fixed"

    def __init__(self, policy):
        self.policy = policy

    def reset(self, n_episodes, seed):
        pass

    def deployment(self):
        return Deployment((self.policy,), np.ones(1), ("fixed",), episodes=10**9)

    def observe(self, reward_returns, cost_returns):
        return reward_returns.size


@pytest.fixture(scope="module")
def task_and_policies():
    task = tabular.gridworld(0.3)
    optimum = tabular.solve(task, backend="highspy")
    risky = tabular.solve(tabular.gridworld(0.3, budget=3.0), backend="highspy").policy
    return task, optimum, risky


def test_safe_exploration_names_the_episode_and_cost(task_and_policies):
    task, optimum, risky = task_and_policies
    check_safe_exploration(lambda: Fixed(optimum.policy), task, 50, horizon=100)
    cost = tabular.evaluate(task, risky).cost_value
    with pytest.raises(AssertionError, match=rf"episode 1 has exact cost {cost:.6g} > budget 1.5"):
        check_safe_exploration(lambda: Fixed(risky), task, 50, horizon=100)


def test_regret_bound_and_output_accuracy_with_exact_numbers(task_and_policies):
    task, optimum, _ = task_and_policies
    safe = tabular.solve(tabular.gridworld(0.4), backend="highspy").policy
    gap = optimum.reward_value - tabular.evaluate(task, safe).reward_value
    K = 40
    check_regret_bound(lambda: Fixed(safe), task, K, K * gap * (1 + 1e-9), horizon=100)
    with pytest.raises(AssertionError, match="Reg"):
        check_regret_bound(lambda: Fixed(safe), task, K, K * gap * (1 - 1e-6), horizon=100)
    check_output_accuracy(lambda: Fixed(safe), task, K, gap * (1 + 1e-9), horizon=100)
    with pytest.raises(AssertionError, match="reward gap"):
        check_output_accuracy(lambda: Fixed(safe), task, K, gap * (1 - 1e-6), horizon=100)
