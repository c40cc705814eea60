"""tabular.outcomes: one episode's distinct outcomes and their exact probabilities.

Checked against quantities obtained another way: the expected truncated returns and visits by
propagating the state distribution t = 0..H-1 (written here, not the module's path enumeration),
and a chi-square test against the numba step simulator's episodes."""

import numpy as np
import pytest
from scipy import stats

from safepce import tabular
from safepce.bounds.hard_instance import hard_family
from safepce.tabular import CMDP, Mixture
from safepce.tabular.errors import InputError
from safepce.tabular.outcomes import TooManyOutcomesError, episode_outcomes


def propagated_means(task: CMDP, policy: np.ndarray, horizon: int, mask: np.ndarray):
    """E[R], E[C], E[visits] of an H-step episode by pushing the state distribution forward."""
    P = task.dense_P
    cost = task.cost if task.cost.ndim == 2 else task.cost[:, :, 0]
    d = task.rho.astype(np.float64).copy()
    R = C = V = 0.0
    for t in range(horizon):
        R += task.gamma**t * np.sum(d[:, None] * policy * task.r)
        C += task.gamma**t * np.sum(d[:, None] * policy * cost)
        V += d[mask].sum()
        d = np.einsum("s,sa,sat->t", d, policy, P)
    return R, C, V


def random_task(seed: int, S: int = 3, A: int = 2) -> CMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S) * 0.5, size=(S, A))
    P[P < 0.2] = 0.0                                   # sparse rows: few outcomes
    P /= P.sum(axis=2, keepdims=True)
    return CMDP(P, rng.random((S, A)), rng.random((S, A)), 2.0, rng.dirichlet(np.ones(S)), 0.7)


@pytest.mark.parametrize("routing", ["tree", "flat"])
def test_hard_family_means_match_the_propagated_distribution(routing):
    family = hard_family(2, 0.8, 0.4, 0.2, c1=2.0, c3=10, routing=routing)
    mask = family.loop_mask()
    for task in family.tasks:
        policy = tabular.solve(task, backend="highspy").policy
        outcomes = episode_outcomes(task, policy, 40, mask)
        assert outcomes.probability.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(outcomes.probability > 0)
        expected = propagated_means(task, policy, 40, mask)
        assert outcomes.mean() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_random_tasks_and_mixtures_match_the_propagated_distribution():
    for seed in range(5):
        task = random_task(seed)
        rng = np.random.default_rng(100 + seed)
        first, second = (rng.dirichlet(np.ones(2), size=3) for _ in range(2))
        mask = np.array([True, False, True])
        mixture = Mixture.of([first, second], [0.3, 0.7])
        outcomes = episode_outcomes(task, mixture, 6, mask)
        means = [np.array(propagated_means(task, p, 6, mask)) for p in (first, second)]
        assert outcomes.mean() == pytest.approx(0.3 * means[0] + 0.7 * means[1], rel=1e-10)


def test_outcome_frequencies_match_the_step_simulator():
    """Chi-square of 200,000 simulated episodes against the exact outcome probabilities (cells
    with expected count >= 5; the rest pooled). A wrong loop probability or a dropped discount
    in either route makes the p-value tiny."""
    family = hard_family(1, 0.8, 0.6, 0.25, c1=2.0, c3=10, routing="flat")
    task = family.tasks[1]
    policy = tabular.solve(task, backend="highspy").policy
    outcomes = episode_outcomes(task, policy, 40)
    simulated = tabular.simulate(task, policy, 200_000, 40, seed=7)
    # every simulated (R, C) is one listed outcome (up to summation order)
    index = np.argmin(np.abs(simulated.reward_return[:, None] - outcomes.reward_return)
                      + np.abs(simulated.cost_return[:, None] - outcomes.cost_return), axis=1)
    assert np.allclose(outcomes.reward_return[index], simulated.reward_return, atol=1e-9)
    observed = np.bincount(index, minlength=outcomes.size).astype(float)
    expected = outcomes.probability * observed.sum()
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    p_value = stats.chisquare(obs, exp).pvalue
    assert p_value > 1e-4, p_value


def test_too_many_outcomes_and_bad_masks_are_refused():
    task = random_task(0, S=5, A=3)
    uniform = np.full((5, 3), 1 / 3)
    with pytest.raises(TooManyOutcomesError, match="simulate it instead"):
        episode_outcomes(task, uniform, 30, max_outcomes=1000)
    with pytest.raises(InputError, match="count_mask"):
        episode_outcomes(task, uniform, 3, count_mask=np.ones(4, dtype=bool))
    with pytest.raises(InputError, match="horizon"):
        episode_outcomes(task, uniform, 0)
