"""Certified Safe-PCE's scope and safety arithmetic, each piece against its definition with the
planted bug it catches named (issue 26): the family checks (finite: every member; affine: the
declaration verified on a dense grid), the finite confidence set with its normalised prior, the
end cells of the affine set, the deployment decision against budget minus margin, and the
Assumption 3.3 record per block."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from safepce import tabular
from safepce.tabular.distributions import FiniteUniform, UniformInterval, runnable_family
from safepce.theory.algorithms.safe_pce_certified import (
    CERTIFIED,
    CertificationError,
    CertifiedPreset,
    CertifiedSafePCE,
    FamilyModel,
)

POLICY = np.full((1, 4, 2), 0.5)


def _base():
    return runnable_family(0, gamma=0.5)


def _counts(task, n_episodes, horizon, seed):
    batch = tabular.simulate_trajectories(task, tabular.Mixture.of(
        [np.full((task.n_states, task.n_actions), 1 / task.n_actions)], [1.0]),
        n_episodes, horizon, seed=seed)
    S, A = task.n_states, task.n_actions
    flat = (batch.states[:, :-1] * A + batch.actions[:, :-1]) * S + batch.states[:, 1:]
    return np.bincount(flat.ravel(), minlength=S * A * S).astype(float)


# --- scope ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["budget", "gamma", "rho", "r", "cost"])
def test_a_finite_family_differing_in_anything_but_the_kernel_is_refused(field):
    """Before: a finite family whose tasks differ only in their budget was accepted, task 0's
    budget used for all, and 40/40 runs violated."""
    family = _base()
    a, b = family.build([0.2]), family.build([0.7])
    changed = {"budget": dict(budget=b.budget * 0.5), "gamma": dict(gamma=0.6),
               "rho": dict(rho=np.array([0.7, 0.1, 0.1, 0.1])),
               "r": dict(r=b.r * 0.5), "cost": dict(cost=b.cost * 2)}[field]
    fields = dict(P=b.P, r=b.r, cost=b.cost, budget=b.budget, rho=b.rho, gamma=b.gamma) | changed
    other = tabular.CMDP(**fields)
    if field == "gamma":            # FiniteUniform itself refuses mixed gammas
        with pytest.raises(ValueError, match="gamma"):
            FiniteUniform([a, other])
        return
    with pytest.raises(CertificationError, match=rf"expected {field}s? to be the same .*"
                                                 r"between task 0 and task 2"):
        FamilyModel(FiniteUniform([a, a, other]), POLICY, CERTIFIED)


def _declared(builder):
    return UniformInterval(0.0, 1.0, builder, kernel_affine=True)


@pytest.mark.parametrize(("case", "words"), [
    ("budget", "budgets to be the same"),
    ("gamma", "gamma to be the same"),
    ("bend", "away from the segment"),
    ("undeclared", "does not declare it"),
])
def test_an_affine_family_is_checked_on_a_dense_grid(case, words):
    """Before: budget or gamma depending on theta were accepted (40/40 runs violated, excess up
    to 7.5 cost units), and affinity was checked at two points only, so a kernel that bends
    elsewhere was accepted."""
    family = _base()
    T, P_b = family.template, family.P_b

    def build(theta):
        P = (1 - theta) * T.P + theta * P_b
        budget, gamma = T.budget, T.gamma
        if case == "budget":
            budget = T.budget * (1 + 0.5 * theta)
        elif case == "gamma":
            gamma = 0.5 + 0.2 * theta
        elif case == "bend":               # quadratic in theta, equal to the segment at 0 and 1
            P = P + 0.01 * theta * (1 - theta) * (P_b - T.P)
        return tabular.CMDP(P, T.r, T.cost, budget, T.rho, gamma)

    bent = _declared(build) if case != "undeclared" else UniformInterval(0.0, 1.0, build)
    with pytest.raises(CertificationError, match=words):
        FamilyModel(bent, POLICY, CERTIFIED)


def test_declared_families_are_accepted():
    assert FamilyModel(_base(), POLICY, CERTIFIED).kind == "affine"


# --- the finite confidence set: its definition, with the prior normalised ------------------------


def test_finite_confidence_set_is_its_definition():
    """{i : log L_i > log sum_j w_j L_j - log(1/delta)} with w = 1/n, recomputed here. The
    search goes through sample sizes until the set with an unnormalised prior (w_j = 1, the
    planted bug) differs from it, so the comparison is one that bug would fail."""
    family = _base()
    tasks = [family.build([t]) for t in np.linspace(0.0, 1.0, 9)]
    model = FamilyModel(FiniteUniform(tasks), POLICY, CERTIFIED)
    delta = 0.05
    kernels = np.stack([t.P.reshape(-1) for t in tasks])
    found = False
    for n_episodes in range(1, 40):
        counts = _counts(family.build([0.43]), n_episodes, 10, seed=n_episodes)
        index = np.flatnonzero(counts)
        loglik = np.log(kernels[:, index]) @ counts[index]
        prior = np.full(len(tasks), -math.log(len(tasks)))
        defined = np.flatnonzero(loglik > logsumexp(prior + loglik) - math.log(1 / delta))
        unnormalised = np.flatnonzero(loglik > logsumexp(loglik) - math.log(1 / delta))
        cover, mle = model.confidence_set(counts, delta)
        np.testing.assert_array_equal(cover, defined)
        assert mle == int(np.argmax(loglik))
        found |= not np.array_equal(defined, unnormalised)
    assert found, "no sample size separated the normalised prior from the unnormalised one"


# --- the affine set's end cells ------------------------------------------------------------------


def test_affine_set_end_cells_contain_the_ends_and_no_more():
    """The set [left, right] found by bisection on the definition here; the grid cells returned
    must reach just past both ends: points[first] <= left < points[first + 1] and
    points[last - 1] < right <= points[last] (theta* 0.4137 is off the grid). Dropping the cell
    that holds the left end (floor -> ceil) fails the first."""
    family = _base()
    preset = CertifiedPreset(delta=0.05, grid=401, prior_grid=101)
    model = FamilyModel(family, POLICY, preset)
    counts = _counts(family.build([0.4137]), 60, 20, seed=4)
    index = np.flatnonzero(counts)

    def loglik(theta):
        return float(np.log(family.build([theta]).P.reshape(-1)[index]) @ counts[index])

    threshold = logsumexp(model.prior + np.array([loglik(t) for t in model.prior_points])) \
        - math.log(1 / preset.delta)
    fine = np.linspace(0, 1, 20001)
    inside = fine[[loglik(t) > threshold for t in fine]]
    left, right = inside.min(), inside.max()
    assert 0 < left and right < 1                          # both ends interior
    cover, _ = model.confidence_set(counts, preset.delta)
    first, last = cover[0], cover[-1]
    assert model.points[first] <= left + 1e-4 and model.points[first + 1] > left - 1e-4
    assert model.points[last] >= right - 1e-4 and model.points[last - 1] < right + 1e-4
    assert model.points[first] <= left and model.points[last] >= right


# --- the decision against budget minus margin -----------------------------------------------------


def test_the_margin_is_subtracted_from_the_budget():
    """The chosen (candidate, alpha) has certified cost <= b - margin over the set; a margin
    forced to leave less room than that choice uses must change the decision (never subtracting
    the margin, the planted bug, keeps it)."""
    from safepce.theory.training import DistanceCoverage, WorstCaseSafePolicy, train

    family = _base()
    training = train(family, DistanceCoverage(0.05), 0.1, seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)
    algorithm = CertifiedSafePCE(training, family, 20, CertifiedPreset(delta=0.05))
    algorithm.reset(10_000, 0)
    algorithm.counts = _counts(family.build([0.5]), 400, 20, seed=8)
    algorithm._decide()
    candidate, alpha = algorithm.choice
    assert candidate is not None and alpha > 0
    cover, _ = algorithm.model.confidence_set(algorithm.counts, 0.05)
    used = float(np.max(alpha * algorithm.model.costs[cover, candidate, 0]
                        + (1 - alpha) * algorithm.model.costs[cover, -1, 0]))
    assert used <= algorithm.budgets[0] - algorithm.model.margins[0]
    algorithm.model.margins[0] = algorithm.budgets[0] - used + 1e-9
    algorithm._decide()
    assert algorithm.choice != (candidate, alpha)
    new_candidate, new_alpha = algorithm.choice
    if new_candidate is not None:
        assert float(np.max(new_alpha * algorithm.model.costs[cover, new_candidate, 0]
                            + (1 - new_alpha) * algorithm.model.costs[cover, -1, 0])) <= \
            algorithm.budgets[0] - algorithm.model.margins[0]


# --- Assumption 3.3 recorded whenever it shows ----------------------------------------------------


def test_every_block_with_pi_s_certified_infeasible_is_recorded():
    """A family member where pi_s is infeasible: each block whose set certifies pi_s's cost above
    b is recorded with the episodes that deployed pi_s alone so far, from the first such block
    on (not only at the end of the run)."""
    family = _base()
    T = family.template
    strict = tabular.CMDP(T.P, T.r, T.cost, 0.0, T.rho, T.gamma)   # budget 0: pi_s infeasible
    tasks = [strict, tabular.CMDP(family.P_b, T.r, T.cost, 0.0, T.rho, T.gamma)]
    finite = FiniteUniform(tasks)
    from safepce.theory.training import TrainingResult

    policy = np.full((4, 2), 0.5)
    training = TrainingResult(
        cover_parameters=np.zeros((1, 1)), policies=policy[None], reward_values=np.zeros(1),
        cost_values=np.zeros(1), safe_policy=policy, safe_reward_values=np.zeros(1),
        safe_cost_values=np.zeros(1), safe_margin=np.zeros(1), rounds=[], settings={})
    from safepce.theory.harness import run_test_phase

    record = run_test_phase(CertifiedSafePCE(training, finite, 20, CertifiedPreset(delta=0.05)),
                            strict, 400, 20, seed=1, optimal_value=0.0)
    blocks = record.log["pi_s_certified_infeasible_blocks"]
    assert "pi_s_certified_infeasible" in record.log["flags"] and blocks
    assert blocks[0]["episode"] == 1 and blocks[0]["pi_s_alone_episodes_so_far"] == 0
    assert [b["pi_s_alone_episodes_so_far"] for b in blocks] == sorted(
        b["pi_s_alone_episodes_so_far"] for b in blocks)
    assert record.log["pi_s_alone_episodes"] == 400 and blocks[-1][
        "pi_s_alone_episodes_so_far"] > 0
