"""Gymnasium view and toy_text importer against exact values."""

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular.gym import as_gym_env, from_toy_text

gymnasium = pytest.importorskip("gymnasium")


def test_env_returns_match_exact_values_and_expose_the_constraint():
    task = tabular.gridworld(0.3)
    policy = tabular.solve(task).policy
    env = as_gym_env(task, horizon=120)
    assert env.unwrapped.budget == 1.5 and env.unwrapped.gamma == 0.9
    rng = np.random.default_rng(0)
    rewards, costs = [], []
    state, _ = env.reset(seed=1)
    for _ in range(1500):
        total_r = total_c = 0.0
        discount = 1.0
        state, _ = env.reset()
        truncated = False
        while not truncated:
            action = int(rng.choice(4, p=policy[state]))
            state, reward, terminated, truncated, info = env.step(action)
            total_r += discount * reward
            total_c += discount * info["cost"]
            discount *= 0.9
        rewards.append(total_r)
        costs.append(total_c)
    exact = tabular.evaluate(task, policy)
    for samples, value in ((rewards, exact.reward_value), (costs, exact.cost_value)):
        samples = np.array(samples)
        assert abs(samples.mean() - value) < 4 * samples.std() / np.sqrt(samples.size) + 1e-3
    with pytest.raises(ValueError, match="^action"):
        env.step(7)


def _value_iteration(table, gamma, n_states, n_actions, iterations=2000):
    """Optimal values straight from the toy_text table (independent of the importer)."""
    V = np.zeros(n_states)
    for _ in range(iterations):
        V = np.array([max(sum(p * (rew + (0.0 if done else gamma * V[nxt]))
                              for p, nxt, rew, done in table[s][a]) for a in range(n_actions))
                      for s in range(n_states)])
    return V


def test_frozen_lake_import_matches_value_iteration():
    env = gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    task = from_toy_text(env, gamma=0.95, budget=0.0)
    assert task.n_states == 17 and task.n_actions == 4
    V = _value_iteration(env.unwrapped.P, 0.95, 16, 4)
    # zero cost and budget 0: the constraint is slack, the LP gives the unconstrained optimum
    solution = tabular.solve(task)
    assert solution.reward_value == pytest.approx(env.unwrapped.initial_state_distrib @ V,
                                                  abs=1e-6)


def test_importer_with_costs_and_bad_input():
    env = gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=False)
    cost = np.zeros((16, 4))
    cost[:, 2] = 1.0                                  # moving left is costly
    task = from_toy_text(env, cost=cost, budget=0.5, gamma=0.9)
    solution = tabular.solve(task)
    assert solution.cost_value <= 0.5 + 1e-9
    with pytest.raises(tabular.InvalidCMDPError, match="^cost"):
        from_toy_text(env, cost=np.zeros((3, 4)))
    with pytest.raises(tabular.InvalidCMDPError, match="^env"):
        from_toy_text(object())


def test_registered_ids_make_picklable_checked_envs():
    import pickle

    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make("safepce/Gridworld-v0", noise=0.3)
    assert env.unwrapped.cmdp.P.shape == (49, 4, 49) and env.unwrapped.horizon == 600
    # noise 0.3's kernel, not the default 0.1's
    assert np.array_equal(env.unwrapped.cmdp.P, tabular.gridworld(0.3).P)
    check_env(env.unwrapped, skip_render_check=True)
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    clone.reset(seed=3)
    env.unwrapped.reset(seed=3)
    assert [clone.step(1)[0] for _ in range(20)] == [env.unwrapped.step(1)[0] for _ in range(20)]
    task = tabular.random_cmdp(3, 2, seed=0)
    other = gymnasium.make("safepce/CMDP-v0", cmdp=task, horizon=5)
    assert other.unwrapped.cmdp is task and other.unwrapped.budget == task.budget


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (a clean Gymnasium registry); its stdout."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_gymnasium_then_safepce_registers_with_the_episode_limit():
    """import gymnasium; import safepce: the ids are registered (by string: nothing of
    safepce.tabular imported until make) with max_episode_steps 600 in the spec."""
    out = _fresh("import sys, gymnasium, safepce\n"
                 "print('safepce.tabular' in sys.modules)\n"
                 "env = gymnasium.make('safepce/Gridworld-v0')\n"
                 "print(env.spec.max_episode_steps, env.unwrapped.budget)")
    assert out.splitlines() == ["False", "600 1.5"]


def test_module_prefixed_id_needs_no_import():
    out = _fresh("import gymnasium\n"
                 "env = gymnasium.make('safepce.tabular.gym:safepce/Gridworld-v0', noise=0.3)\n"
                 "env.reset(seed=0)\n"
                 "print(env.spec.max_episode_steps, env.unwrapped.cmdp.P[0, 0, 0])")
    steps, p = out.split()
    assert steps == "600" and float(p) == pytest.approx(float(tabular.gridworld(0.3).P[0, 0, 0]))


def test_import_safepce_does_not_import_gymnasium():
    assert _fresh("import sys, safepce; print('gymnasium' in sys.modules)") == "False"
