"""The paper's gridworld (PAPER.md section 7) and the random family."""

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular import InvalidCMDPError
from safepce.tabular.families import GOAL_STATE, HAZARD_STATES, state_of


def test_interior_transition_example_from_the_paper():
    """p = 0.3, interior cell: 0.775 to the intended neighbour, 0.075 to each other neighbour."""
    P = tabular.gridworld(0.3).P
    s = state_of(3, 3)
    for a, target in enumerate([state_of(4, 3), state_of(3, 4), state_of(2, 3), state_of(3, 2)]):
        assert P[s, a, target] == pytest.approx(0.775)
        others = [state_of(4, 3), state_of(3, 4), state_of(2, 3), state_of(3, 2)]
        others.remove(target)
        assert np.allclose(P[s, a, others], 0.075)
        assert P[s, a].sum() == pytest.approx(1.0)


def test_wall_bump_domain_includes_the_current_cell():
    """Corner (0,0) moving left: domain = {(1,0), (0,1), (0,0)}; intended = stay."""
    P = tabular.gridworld(0.3).P
    s = state_of(0, 0)
    assert P[s, 2, s] == pytest.approx(0.7 + 0.1)
    assert P[s, 2, state_of(1, 0)] == pytest.approx(0.1)
    assert P[s, 2, state_of(0, 1)] == pytest.approx(0.1)
    # moving right: intended (1,0) is a neighbour, domain = the two neighbours
    assert P[s, 0, state_of(1, 0)] == pytest.approx(0.7 + 0.15)
    assert P[s, 0, state_of(0, 1)] == pytest.approx(0.15)


def test_layout():
    task = tabular.gridworld(0.2)
    assert GOAL_STATE == 45
    assert HAZARD_STATES == (9, 11, 16, 18, 23, 25, 30, 32)
    assert np.all(task.P[GOAL_STATE, :, GOAL_STATE] == 1.0)
    assert np.all(task.r[GOAL_STATE] == 10) and task.r.sum() == 40
    assert np.all(task.cost[list(HAZARD_STATES)] == 10) and task.cost.sum() == 8 * 4 * 10
    assert np.count_nonzero(task.rho) == 41 and task.rho[GOAL_STATE] == pytest.approx(1 / 41)
    assert task.gamma == 0.9 and task.budget == 1.5


def test_kernel_is_affine_in_noise_and_batched():
    kernels = tabular.gridworld_kernel(np.array([0.0, 0.2, 0.4]))
    assert kernels.shape == (3, 49, 4, 49)
    assert np.allclose(kernels[1], 0.5 * (kernels[0] + kernels[2]))
    assert np.allclose(kernels[1], tabular.gridworld(0.2).P)


@pytest.mark.parametrize("noise", [-0.1, 1.5, float("nan")])
def test_noise_out_of_range(noise):
    with pytest.raises(InvalidCMDPError, match="^noise"):
        tabular.gridworld(noise)


def test_random_family_is_seeded_and_feasible():
    a = tabular.random_cmdp(4, 3, seed=7, n_constraints=2)
    b = tabular.random_cmdp(4, 3, seed=7, n_constraints=2)
    c = tabular.random_cmdp(4, 3, seed=8, n_constraints=2)
    assert np.array_equal(a.P, b.P) and np.array_equal(a.budget, b.budget)
    assert not np.array_equal(a.P, c.P)
    uniform = tabular.evaluate(a, tabular.uniform_policy(4, 3))
    assert np.allclose(uniform.cost_value, a.budgets)
    with pytest.raises(InvalidCMDPError, match="^n_states"):
        tabular.random_cmdp(0, 3, seed=1)


def test_gridworld_noise_model_option_builds_the_texts_kernel():
    """D with noise_model="text" builds Section 6's kernel (one task and many alike), keeps the
    option in its description, and refuses it off the 7 x 7 grid."""
    from safepce.tabular.distributions import GridworldNoise, InvalidDistributionError

    text = tabular.families.make("gridworld", noise_model="text")
    task = text.build([0.4])
    np.testing.assert_array_equal(task.P, tabular.gridworld_kernel(0.4, "text"))
    assert not np.allclose(task.P, tabular.gridworld_kernel(0.4))
    many = text.build_many(np.array([[0.2], [0.4]]))
    np.testing.assert_array_equal(many[1].P, task.P)
    assert text.to_dict()["noise_model"] == "text"
    assert "noise_model" not in GridworldNoise().to_dict()
    with pytest.raises(InvalidDistributionError, match="noise_model"):
        GridworldNoise(noise_model="text", size=9)
    with pytest.raises(InvalidDistributionError, match="noise_model"):
        GridworldNoise(noise_model="paper")
