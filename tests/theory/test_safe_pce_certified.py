"""Certified Safe-PCE: each step of its guarantee checked on its own (the confidence sequence's
coverage, the exact values and the curvature margin, the certified weights), then runs."""

import math

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular.distributions import GridworldNoise, runnable_family
from safepce.theory.algorithms import make_algorithm
from safepce.theory.algorithms.safe_pce_certified import (
    CERTIFIED,
    CertificationError,
    CertifiedPreset,
    CertifiedSafePCE,
    FamilyModel,
    certified_weights,
)
from safepce.theory.experiment import ExperimentSettings, experiment_training
from safepce.theory.harness import run_test_phase


@pytest.fixture(scope="module")
def gridworld():
    training, family = experiment_training(ExperimentSettings())
    return training, family


def _policies(training):
    return np.concatenate([training.policies, training.safe_policy[None]])


def _transition_counts(task, policy, n_episodes, horizon, seed):
    batch = tabular.simulate_trajectories(task, tabular.Mixture.of([policy], [1.0]),
                                          n_episodes, horizon, seed=seed)
    S, A = task.n_states, task.n_actions
    flat = (batch.states[:, :-1] * A + batch.actions[:, :-1]) * S + batch.states[:, 1:]
    return np.bincount(flat.ravel(), minlength=S * A * S).astype(float)


def test_values_grid_matches_exact_evaluation(gridworld):
    """The values grid (affine batched solves) against tabular.evaluate on built tasks."""
    training, family = gridworld
    model = FamilyModel(family, _policies(training), CERTIFIED)
    assert model.kind == "affine"
    for k in (0, 1234, 2400, 4000):
        task = family.build([model.points[k]])
        for j, policy in enumerate(_policies(training)):
            exact = tabular.evaluate(task, policy)
            assert model.costs[k, j, 0] == pytest.approx(exact.cost_value, abs=1e-10)
            assert model.reward[k, j] == pytest.approx(exact.reward_value, abs=1e-9)


def test_curvature_margin_bounds_values_between_grid_points(gridworld):
    """Between two grid points every policy's exact cost stays below the larger end point plus
    the margin h^2/8 max|V''| (checked at cell midpoints and quarter points), and the margin is
    not vacuous (< 1e-3 cost units). A margin without the h^2 (e.g. h/8) would be 1e3x larger,
    one with a dropped 1/(1-gamma)^3 would fail the check where the cost bends most."""
    training, family = gridworld
    model = FamilyModel(family, _policies(training), CERTIFIED)
    assert 0 < model.margins[0] < 1e-3
    h = model.step
    assert model.margins[0] == pytest.approx(h**2 / 8 * 2 * 0.81 * 1.5**2 * 10 / 0.1**3)
    # a coarse grid makes the check bite: step 0.05, margin ~ 0.011
    coarse = FamilyModel(family, _policies(training), CertifiedPreset(grid=11))
    worst = -math.inf
    for k in range(10):
        for frac in (0.25, 0.5, 0.75):
            theta = coarse.points[k] + frac * coarse.step
            task = family.build([theta])
            for j, policy in enumerate(_policies(training)):
                value = tabular.evaluate(task, policy).cost_value
                bound = max(coarse.costs[k, j, 0], coarse.costs[k + 1, j, 0]) + coarse.margins[0]
                worst = max(worst, value - bound)
    assert worst <= 0


@pytest.mark.parametrize("delta", [0.3])
def test_confidence_sequence_covers_the_true_parameter(delta):
    """Ville's inequality: theta* escapes the set at some checkpoint in at most a fraction
    delta of runs. 150 runs of the runnable family at delta 0.3, 12 checkpoints each: the
    escape fraction must stay below 0.3 + 3 standard errors. Dropping log(1/delta) from the
    threshold (the maximum-likelihood set) or using the coarse grid's best point as the set
    escapes in most runs."""
    family = runnable_family(0, gamma=0.5)
    model = FamilyModel(family, np.full((1, 4, 2), 0.5), CertifiedPreset(delta=delta))
    rng = np.random.default_rng(0)
    escaped = 0
    for run in range(150):
        theta = rng.uniform()
        task = family.build([theta])
        counts = np.zeros(4 * 2 * 4)
        out = False
        for checkpoint in range(12):
            counts += _transition_counts(task, np.full((4, 2), 0.5), 5, 40,
                                         seed=np.random.SeedSequence([run, checkpoint]))
            cover, _ = model.confidence_set(counts, delta)
            low, high = model.points[cover[0]], model.points[cover[-1]]
            out = out or not low <= theta <= high
        escaped += out
    assert escaped / 150 <= delta + 3 * math.sqrt(delta * (1 - delta) / 150)


def test_confidence_set_shrinks_around_the_truth(gridworld):
    training, family = gridworld
    model = FamilyModel(family, _policies(training), CERTIFIED)
    task = family.build([0.31])
    counts = _transition_counts(task, training.safe_policy, 2000, 600, seed=1)
    cover, mle = model.confidence_set(counts, 0.01)
    low, high = model.points[cover[0]], model.points[cover[-1]]
    assert low <= 0.31 <= high and high - low < 0.05
    assert abs(model.points[mle] - 0.31) < 0.02


def test_finite_family_set_is_exact():
    from safepce.bounds.claims.certified import certified_hard_family, certified_hard_training

    family = certified_hard_family().distribution
    training = certified_hard_training()
    model = FamilyModel(family, _policies(training), CERTIFIED)
    assert model.kind == "finite" and model.margins[0] == 0
    task = family.tasks[2]
    counts = _transition_counts(task, np.full((task.n_states, task.n_actions),
                                              1 / task.n_actions), 3000, 40, seed=3)
    cover, mle = model.confidence_set(counts, 0.01)
    assert 2 in cover and mle == 2


def test_certified_weights_are_the_feasible_interval():
    """Against a brute-force scan of alpha in k/200: the interval holds exactly the weights
    whose mixture cost is within the limit at every point."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        cost_l = rng.uniform(0, 3, 7)
        cost_s = rng.uniform(0, 2, 7)
        limit = 1.5
        alphas = np.arange(201) / 200
        ok = [a for a in alphas if np.all(a * cost_l + (1 - a) * cost_s <= limit)]
        interval = certified_weights(cost_l, cost_s, limit, 200)
        if not ok:
            assert interval is None
        else:
            assert interval == pytest.approx((min(ok), max(ok)))


def test_published_tasks_safe_and_learning(gridworld):
    """Three published tasks at K = 40,000: no infeasible deployed policy, regret far below
    pi_s's and the tuned Safe-PCE's (about 40k on these tasks)."""
    training, family = gridworld
    from safepce.theory.experiment import PAPER_TEST_TASKS, optimal_value, run_seed

    for i in (0, 1, 8):
        task = tabular.gridworld(PAPER_TEST_TASKS[i])
        algorithm = make_algorithm("safe-pce-certified", training, family, 600)
        record = run_test_phase(algorithm, task, 40_000, 600, seed=run_seed(0, i),
                                optimal_value=optimal_value(task))
        assert not record.violated.any()
        assert record.cumulative_regret[-1] < 20_000
        assert record.log["final_alpha"] > 0.5 and record.log["flags"] == []


def test_detects_a_task_where_pi_s_is_infeasible(gridworld):
    """Noise 0.46: no policy is feasible (Assumption 3.3 fails); the run says so and deploys
    only pi_s (nothing can be certified)."""
    training, family = gridworld
    task = family.build([0.46])
    record = run_test_phase(make_algorithm("safe-pce-certified", training, family, 600), task,
                            3000, 600, seed=2, optimal_value=0.0)
    assert {"pi_s_certified_infeasible", "pi_s_not_certified"} <= set(record.log["flags"])
    assert record.safe_only.all() and record.log["uncertified_episodes"] == 3000


def test_detects_data_impossible_under_the_family(gridworld):
    """Transitions that no task of the family can produce (a jump across the grid) flag
    model_inconsistent and stop mixing."""
    training, family = gridworld
    algorithm = CertifiedSafePCE(training, family, 600)
    algorithm.reset(1000, 0)
    batch = tabular.simulate_trajectories(family.build([0.3]), tabular.Mixture.of(
        [training.safe_policy], [1.0]), 20, 600, seed=0)
    batch.states[:, 1] = 48                       # from anywhere to the far corner in one step
    batch.states[:, 0] = 0
    algorithm.observe(*batch.discounted_returns(), trajectories=batch)
    assert "model_inconsistent" in algorithm.log()["flags"]
    assert algorithm.deployment().keys == ("safe",)


def test_unsupported_families_are_refused_before_solving():
    from types import SimpleNamespace

    two_parameters = SimpleNamespace(parameter_names=("noise", "other"), low=0.0, high=1.0)
    with pytest.raises(CertificationError, match="family"):
        FamilyModel(two_parameters, np.full((1, 49, 4), 0.25), CERTIFIED)

    class CostDependsOnNoise(GridworldNoise):
        def build(self, theta):
            task = super().build(theta)
            return tabular.CMDP(task.P, task.r, task.cost * (1 + float(np.ravel(theta)[0])),
                                task.budget, task.rho, task.gamma)

    with pytest.raises(CertificationError, match="cost"):
        FamilyModel(CostDependsOnNoise(), np.full((1, 49, 4), 0.25), CERTIFIED)
    with pytest.raises(CertificationError, match="delta"):
        CertifiedSafePCE.__init__(object.__new__(CertifiedSafePCE), None, None, 600,
                                  CertifiedPreset(delta=1.5))


def test_confidence_set_is_the_villes_inequality_set():
    """The set recomputed from its definition, with the likelihood summed transition by
    transition: every theta with sum_g w_g L(theta_g) / L(theta) < 1/delta lies inside the
    returned range, every theta outside it has a ratio >= 1/delta. A threshold without
    log(1/delta), or with the prior's weights dropped, fails."""
    from scipy.special import logsumexp

    family = runnable_family(0, gamma=0.5)
    delta = 0.05
    model = FamilyModel(family, np.full((1, 4, 2), 0.5), CertifiedPreset(delta=delta))
    task = family.build([0.37])
    counts = _transition_counts(task, np.full((4, 2), 0.5), 30, 40, seed=11)
    cover, _ = model.confidence_set(counts, delta)
    low, high = model.points[cover[0]], model.points[cover[-1]]
    nonzero = [(i, n) for i, n in enumerate(counts) if n > 0]

    def loglik(theta):
        P = family.build([theta]).P.reshape(-1)
        return sum(n * math.log(P[i]) for i, n in nonzero)

    prior_log = logsumexp([model.prior[g] + loglik(t) for g, t in enumerate(model.prior_points)])
    inside = outside = 0
    for theta in np.linspace(0, 1, 401):
        log_ratio = prior_log - loglik(theta)
        if log_ratio < math.log(1 / delta) - 1e-9:
            assert low <= theta <= high
            inside += 1
        elif not low <= theta <= high:
            assert log_ratio >= math.log(1 / delta) - 1e-9
            outside += 1
    assert inside > 10 and outside > 10            # both sides of the boundary are exercised
