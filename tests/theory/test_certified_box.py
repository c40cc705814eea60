"""Certified Safe-PCE on families of 2-3 parameters and tasks with K constraints (issue 26, item
4): the cells that cover the confidence set against the set's definition, the per-cell
curvature margin against exact values inside cells, each constraint certified, the scope check
in d dimensions, the harness's K-constraint records, and the shipped families."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from safepce import tabular
from safepce.tabular import families
from safepce.tabular.distributions import TaskDistribution
from safepce.theory.algorithms.safe_pce_certified import (
    DEEPEST_LEVEL,
    BoxModel,
    CertificationError,
    CertifiedPreset,
    CertifiedSafePCE,
    family_model,
)
from safepce.theory.harness import RunRecord, run_test_phase
from safepce.theory.training import TrainingResult


class Plane(TaskDistribution):
    """A small family with ``P = P_a + t1 (P_b - P_a) + t2 (P_c - P_a)`` on [0, 1/2]^2 (4 states,
    2 actions, gamma 0.5), theta uniform; ``n_costs`` cost signals with budgets; subclasses
    bend it."""

    parameter_names = ("t1", "t2")
    kernel_affine = True

    def __init__(self, n_costs=1, seed=0, flat_first=False):
        rng = np.random.default_rng(seed)
        self.kernels = [rng.dirichlet(np.ones(4), size=(4, 2)) for _ in range(3)]
        if flat_first:                    # t1 moves nothing: all curvature is along t2
            self.kernels[1] = self.kernels[0]
        self.r = rng.uniform(0, 1, (4, 2))
        self.cost = rng.uniform(0, 1, (4, 2, n_costs))
        self.budget = np.full(n_costs, 0.9)
        self.low, self.high = np.zeros(2), np.full(2, 0.5)

    def sample(self, n, seed):
        return np.random.default_rng(seed).uniform(self.low, self.high, (n, 2))

    def kernel(self, theta):
        a, b, c = self.kernels
        return a + theta[0] * (b - a) + theta[1] * (c - a)

    def build(self, theta):
        theta = np.asarray(theta, dtype=float).reshape(-1)
        cost = self.cost[..., 0] if self.cost.shape[-1] == 1 else self.cost
        budget = self.budget[0] if self.cost.shape[-1] == 1 else self.budget
        return tabular.CMDP(self.kernel(theta), self.r, cost, budget, np.full(4, 0.25), 0.5)


POLICIES = np.stack([np.full((4, 2), 0.5), np.tile([0.9, 0.1], (4, 1)),
                     np.tile([0.1, 0.9], (4, 1))])


def _counts(task, n_episodes, horizon, seed, policy=None):
    policy = np.full((task.n_states, task.n_actions), 1 / task.n_actions) if policy is None \
        else policy
    batch = tabular.simulate_trajectories(task, tabular.Mixture.of([policy], [1.0]), n_episodes,
                                          horizon, seed=seed)
    S, A = task.n_states, task.n_actions
    flat = (batch.states[:, :-1] * A + batch.actions[:, :-1]) * S + batch.states[:, 1:]
    return np.bincount(flat.ravel(), minlength=S * A * S).astype(float)


def _inside(model, cells, level, theta):
    """Whether each point of theta (m, d) lies in one of the cells (closed)."""
    side = model.span / 2**level
    lower = model.low + cells * side                                            # (c, d)
    tol = 1e-12
    return np.array([np.any(np.all((lower <= t + tol) & (t <= lower + side + tol), axis=1))
                     for t in theta])


def _in_set_by_definition(family, model, counts, delta, lattice):
    """The points of ``lattice`` in Theta_t, from its definition: log L summed transition by
    transition from the family's kernels, the threshold over the model's prior."""
    nonzero = np.flatnonzero(counts)

    def loglik(theta):
        with np.errstate(divide="ignore"):
            return float(np.log(family.kernel(theta).reshape(-1)[nonzero]) @ counts[nonzero])

    threshold = logsumexp(model.prior + np.array([loglik(t) for t in model.prior_points])) \
        - math.log(1 / delta)
    return lattice[[loglik(t) > threshold for t in lattice]]


# --- the cells covering Theta_t -------------------------------------------------------------------


def test_cells_cover_the_set_recomputed_from_its_definition():
    """Every point of a 201 x 201 lattice whose likelihood ratio sum_g w_g L(theta_g) / L(theta)
    is below 1/delta (the likelihood summed here transition by transition from built tasks) lies
    in a kept cell, and the cells are not the whole box (under 10% of it). Planted: the tangent
    planes' step taken the wrong way (-h where the cell extends by +h) drops cells holding
    points of the set."""
    family = Plane()
    preset = CertifiedPreset(delta=0.05, cells=256)
    model = BoxModel(family, POLICIES, preset)
    counts = _counts(family.build([0.31, 0.17]), 400, 20, seed=3)
    lattice = np.array([(a, b) for a in np.linspace(0, 0.5, 201) for b in np.linspace(0, 0.5, 201)])
    in_set = _in_set_by_definition(family, model, counts, preset.delta, lattice)
    assert 20 < len(in_set) < 0.05 * len(lattice)         # a set neither empty nor the box
    cells, level = model.cells(counts, preset.delta)
    assert _inside(model, cells, level, in_set).all()
    assert len(cells) / 4**level < 0.10


def test_confidence_cells_hold_the_true_parameter_at_delta():
    """Ville's inequality in two dimensions: over 120 runs with theta* = (0.31, 0.17), 10
    checkpoints each, theta* leaves the kept cells at some checkpoint in at most delta = 0.3 of
    runs (+3 standard errors). A coverage check, not a sharp one: with 1,681 prior points the
    prior's sum already sits far below the maximum likelihood, so even the set without
    log(1/delta) (planted) keeps theta* here; that plant is caught by
    test_cells_cover_the_set_recomputed_from_its_definition. Tangent planes taken the wrong
    way, which drop cells of the set, fail here too."""
    family = Plane()
    delta = 0.3
    model = BoxModel(family, POLICIES, CertifiedPreset(delta=delta, cells=256))
    truth = np.array([0.31, 0.17])
    task = family.build(truth)
    escaped = 0
    for run in range(120):
        counts = np.zeros(32)
        out = False
        for checkpoint in range(10):
            counts += _counts(task, 3, 20, seed=np.random.SeedSequence([run, checkpoint]))
            cells, level = model.cells(counts, delta)
            out = out or not _inside(model, cells, level, truth[None])[0]
        escaped += out
    assert escaped / 120 <= delta + 3 * math.sqrt(delta * (1 - delta) / 120)


# --- the curvature margin per cell ----------------------------------------------------------------


def test_margin_bounds_every_cost_inside_a_cell():
    """On the four level-1 cells of the box (sides 1/4): at 25 points per cell, every
    policy's exact cost k (tabular.evaluate on the built task) is at most its largest vertex
    value plus sum_i h_i^2/8 curvature[i, k]. The kernel does not move along t1, so the first
    axis's term is 0: with only that term (the planted bug: the sum over axes dropped) some
    point exceeds the bound, and so does a margin of 0 (seed 7: a cost concave along t2). The
    bound is sound but loose: the largest excess over the vertex maximum is ~0.25% of the
    margin here (the norm bound of |V''| is reached only by adversarial kernels)."""
    family = Plane(n_costs=2, seed=7, flat_first=True)
    model = BoxModel(family, POLICIES, CertifiedPreset())
    level = 1
    size = 2**(DEEPEST_LEVEL - level)
    margin = ((model.span / 2**level)**2 / 8) @ model.curvature
    first_axis_only = ((model.span[:1] / 2**level)**2 / 8) @ model.curvature[:1]
    rng = np.random.default_rng(0)
    worst, worst_first_only = -np.inf, -np.inf
    for cell in np.array([(0, 0), (0, 1), (1, 0), (1, 1)]):
        vertices = (cell[None] + model._corners) * size
        top = model._values(vertices)[0].max(axis=0)                          # (J, K)
        for t2 in np.linspace(0.02, 0.98, 25):
            theta = model.low + (cell + np.array([rng.uniform(), t2])) * model.span / 2**level
            task = family.build(theta)
            exact = np.stack([np.atleast_1d(tabular.evaluate(task, p).cost_value)
                              for p in POLICIES])
            worst = max(worst, float(np.max(exact - top - margin)))
            worst_first_only = max(worst_first_only, float(np.max(exact - top - first_axis_only)))
    assert worst <= 0
    assert worst_first_only > 0


def test_vertex_values_are_exact():
    family = Plane(n_costs=2)
    model = BoxModel(family, POLICIES, CertifiedPreset())
    lattice = np.array([[0, 0], [2**DEEPEST_LEVEL, 2**DEEPEST_LEVEL], [12345, 678901]])
    costs, rewards = model._values(lattice)
    for row, point in enumerate(lattice):
        task = family.build(model.low + point / 2**DEEPEST_LEVEL * model.span)
        for j, policy in enumerate(POLICIES):
            exact = tabular.evaluate(task, policy)
            np.testing.assert_allclose(costs[row, j], exact.cost_value, atol=1e-12)
            assert rewards[row, j] == pytest.approx(exact.reward_value, abs=1e-12)


def test_region_margin_is_the_formula_at_its_level():
    """The region's margin per constraint, against sum_i h_i^2/8 * 2 gamma^2 ||B_i||^2
    max|c_k| / (1-gamma)^3 recomputed here from the family's kernels (h_i: the kept cells'
    sides at their level). Planted: a dropped factor 2 or gamma^2 in ``curvatures``, or one
    axis's term dropped in the region's sum, turns it red."""
    family = Plane(n_costs=2, seed=2)
    model = BoxModel(family, POLICIES, CertifiedPreset(delta=0.05, cells=64))
    counts = _counts(family.build([0.2, 0.3]), 200, 20, seed=1)
    cells, level = model.cells(counts, 0.05)
    region = model.region(counts, 0.05)
    a, b, c = family.kernels
    norms = np.array([np.abs(b - a).sum(axis=-1).max(), np.abs(c - a).sum(axis=-1).max()])
    scale = np.abs(family.cost).reshape(-1, 2).max(axis=0)
    curvature = 2 * 0.5**2 * norms[:, None]**2 * scale[None] / 0.5**3
    expected = ((0.5 / 2**level)**2 / 8 * curvature).sum(axis=0)
    np.testing.assert_allclose(region.margins, np.broadcast_to(expected, region.margins.shape),
                               rtol=1e-12)
    assert level > 3                                   # refined below the coarsest cells


# --- the scope in d dimensions --------------------------------------------------------------------


class BentPlane(Plane):
    """The second coordinate enters squared: not affine (a bent kernel)."""

    def kernel(self, theta):
        a, b, c = self.kernels
        return a + theta[0] * (b - a) + 2 * theta[1]**2 * (c - a)


class BudgetAlongT2(Plane):
    """Affine kernel, but the budget grows with the second coordinate."""

    def build(self, theta):
        task = super().build(theta)
        t2 = float(np.asarray(theta, dtype=float).reshape(-1)[1])
        return tabular.CMDP(task.P, task.r, task.cost, task.budget + t2, task.rho, task.gamma)


class FourParameters(Plane):
    parameter_names = ("t1", "t2", "t3", "t4")


class Undeclared(Plane):
    kernel_affine = False


@pytest.mark.parametrize(("family", "words"), [
    (BentPlane(), "affine in its parameters"), (BudgetAlongT2(), "budgets"),
    (FourParameters(), "1 to 3 parameters"), (Undeclared(), "kernel_affine")])
def test_families_outside_the_proof_are_refused(family, words):
    """A bent kernel (t2 squared), a budget depending on t2, four parameters, and a family that
    does not declare an affine kernel: each refused before anything is solved, naming what."""
    with pytest.raises(CertificationError, match=words):
        family_model(family, POLICIES, CertifiedPreset())


def test_a_kernel_bent_only_between_lattice_points_is_the_declarations_responsibility():
    """The lattice has 12 points per axis: a bend that vanishes on it (sin^2 of 11 pi t2 / 0.5
    is 0 at every lattice point) is not seen; the docstring says so, and this pins it."""

    class Hidden(Plane):
        def kernel(self, theta):
            a, b, c = self.kernels
            wiggle = 0.01 * np.sin(11 * np.pi * theta[1] / 0.5)**2
            return a + theta[0] * (b - a) + (theta[1] + wiggle) * (c - a)

    BoxModel(Hidden(), POLICIES, CertifiedPreset())


def test_shipped_families_are_accepted_and_declare_their_support():
    """The three families of item 4 pass the scope check (two of 2 parameters: BoxModel; one of
    1 parameter with 2 constraints: FamilyModel), and the affine kernel the model keeps equals
    the family's own kernel at three random points of the support (so a model built from the
    wrong corners, or a slope divided by the wrong span, fails)."""
    rng = np.random.default_rng(4)
    for name, kind, constraints in (("gridworld-slip-wind", "affine-box", 1),
                                    ("random-sparse-plane", "affine-box", 1),
                                    ("gridworld-energy", "affine", 2)):
        family = families.make(name)
        task = family.build(family.sample(1, 0)[0])
        policy = np.full((1, task.n_states, task.n_actions), 1 / task.n_actions)
        model = family_model(family, policy, CertifiedPreset())
        assert family.kernel_affine and model.kind == kind
        assert task.n_constraints == constraints
        low, high = np.atleast_1d(family.low), np.atleast_1d(family.high)
        for _ in range(3):
            theta = rng.uniform(low, high)
            slopes = model.slopes if kind == "affine-box" else model.slope[None]
            kept = model.base + theta @ slopes
            np.testing.assert_allclose(kept, family.build(theta).dense_P.reshape(-1),
                                       atol=1e-12)


# --- K constraints --------------------------------------------------------------------------------


def _training(policies, safe):
    n = len(policies)
    return TrainingResult(
        cover_parameters=np.zeros((n, 2)), policies=np.asarray(policies), reward_values=np.zeros(n),
        cost_values=np.zeros(n), safe_policy=np.asarray(safe), safe_reward_values=np.zeros(n),
        safe_cost_values=np.zeros(n), safe_margin=np.zeros(n), rounds=[], settings={})


def test_every_constraint_is_certified():
    """Two constraints where only the second binds (the first's budget is above every policy's
    cost on the whole box): the chosen (candidate, alpha) keeps both within budget minus margin
    at every row of the region, and the second constraint is what limits alpha (its interval is
    narrower than the first's), so certifying the first alone (the planted bug) would deploy
    alpha beyond the second's bound."""
    family = Plane(n_costs=2, seed=3)
    family.cost[..., 1] = [0.0, 1.0]              # the second cost: playing action 1
    safe, candidates = POLICIES[1], POLICIES[[2, 0]]   # pi_s plays action 1 w.p. 0.1
    grid = [family.build([a, b]) for a in np.linspace(0, 0.5, 6) for b in np.linspace(0, 0.5, 6)]
    values = tabular.evaluate_batch(grid, POLICIES).cost_value              # (36, 3, 2)
    family.budget = np.array([values[..., 0].max() + 0.1, 0.6])
    assert values[:, [0, 2], 1].min() > family.budget[1] > values[:, 1, 1].max()
    algorithm = CertifiedSafePCE(_training(candidates, safe), family, 20,
                                 CertifiedPreset(delta=0.05, cells=256))
    algorithm.reset(10_000, 0)
    algorithm.counts = _counts(family.build([0.2, 0.3]), 300, 20, seed=2)
    algorithm._decide()
    candidate, alpha = algorithm.choice
    assert candidate is not None and 0 < alpha < 1
    region = algorithm.model.region(algorithm.counts, 0.05)
    mixed = alpha * region.costs[:, candidate] + (1 - alpha) * region.costs[:, -1]
    assert np.all(mixed <= algorithm.budgets[None] - region.margins)
    from safepce.theory.algorithms.safe_pce_certified import certified_weights
    limits = algorithm.budgets[None] - region.margins
    first = certified_weights(region.costs[:, candidate, 0], region.costs[:, -1, 0],
                              limits[:, 0], 200)
    second = certified_weights(region.costs[:, candidate, 1], region.costs[:, -1, 1],
                               limits[:, 1], 200)
    assert first == (0.0, 1.0) and second[1] < 1.0 and alpha == second[1]


def test_two_constraint_gridworld_runs_feasible_in_both():
    """The two-constraint gridworld at three tasks of D, 3,000 episodes each: no deployed policy
    exceeds either budget, a deployed energy comes within 0.05 of its budget 3, and the records
    carry (n, 2) costs with both budgets. On this family the hazard constraint is the one that
    limits every certified weight: certifying it alone (the plant of
    test_every_constraint_is_certified, which that test catches) still kept the energy at most
    2.979 on 12 tasks of noise 0.25-0.36 (measured), so this run cannot see that bug."""
    from safepce.theory.experiment import FamilySettings, experiment_training, optimal_value

    training, family = experiment_training(FamilySettings(family="gridworld-energy"))
    closest = -np.inf
    for i, noise in enumerate((0.27, 0.3, 0.33)):
        task = family.build([noise])
        algorithm = CertifiedSafePCE(training, family, 600)
        record = run_test_phase(algorithm, task, 3000, 600, seed=i,
                                optimal_value=optimal_value(task))
        assert record.cost_value.shape == (3000, 2) and record.budget == [1.5, 3.0]
        assert not record.violated.any(), record.cost_value.max(axis=0)
        closest = max(closest, float(record.cost_value[:, 1].max()))
    assert closest > 2.95


def test_run_records_with_two_constraints():
    """violated and constraint_regret count every constraint: a record whose second constraint
    alone is exceeded in episode 2 (reading the first column only, the planted bug, misses it)."""
    record = RunRecord(algorithm="x", preset="p", optimal_value=1.0, budget=[1.0, 2.0],
                       reward_value=np.zeros(3), cost_value=np.array([[0.5, 1.0], [0.9, 2.5],
                                                                      [1.2, 1.0]]),
                       safe_only=np.zeros(3, dtype=bool), horizon=1, seed=0, wall_seconds=0.0)
    np.testing.assert_array_equal(record.violated, [False, True, True])
    assert record.constraint_regret == pytest.approx(0.5 + 0.2)
    assert record.first_violation_episode == 2


def test_one_constraint_algorithms_refuse_several_constraints():
    from safepce.theory.experiment import FamilySettings, experiment_training

    training, family = experiment_training(FamilySettings(family="gridworld-energy"))
    from safepce.theory.algorithms import make_algorithm

    algorithm = make_algorithm("safe-pce", training, family, 600)
    with pytest.raises(tabular.InvalidCMDPError, match="K = 2"):
        run_test_phase(algorithm, family.build([0.3]), 10, 600, seed=0, optimal_value=0.0)


# --- the guarantee where it binds: delta 0.3, theta* at the edge of D's mass (slow) ---------------

#: theta* of the attack per family: 2.5 standard deviations above D's mean in every coordinate
#: (costs grow with the noises, so a set drawn towards D's mass under-estimates them), and a
#: corner of the uniform family's box
ATTACK = {"gridworld-slip-wind": (0.325, 0.065), "gridworld-energy": (0.375,),
          "random-sparse-plane": (0.45, 0.45)}


def _attack_chunk(family_name, training_path, theta, seeds, episodes, delta):
    from safepce.theory.experiment import FamilySettings, _load_training, experiment_family

    training = _load_training(training_path)
    family, spec = experiment_family(FamilySettings(family=family_name))
    task = family.build(np.asarray(theta))
    from safepce.theory.experiment import optimal_value

    optimum = optimal_value(task)
    preset = CertifiedPreset(name="certified-attack", delta=delta)
    out = []
    for seed in seeds:
        record = run_test_phase(CertifiedSafePCE(training, family, spec.horizon, preset), task,
                                episodes, spec.horizon, seed=int(seed), optimal_value=optimum)
        out.append((bool(record.violated.any()), float(record.cumulative_regret[-1])))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family_name", sorted(ATTACK))
def test_violation_rate_at_delta_stays_below_delta(family_name, tmp_path):
    """400 runs of 1,000 episodes at delta = 0.3 with theta* fixed (:data:`ATTACK`, where pi_s
    is feasible): the fraction of runs that deploy an infeasible policy is at most delta; its
    95% Clopper-Pearson interval is printed. (Run: pytest -m slow -k violation_rate -s.)"""
    from safepce.theory.experiment import FamilySettings, experiment_training
    from safepce.theory.results import clopper_pearson
    from safepce.theory.sweep import make_executor

    training, family = experiment_training(FamilySettings(family=family_name))
    task = family.build(np.asarray(ATTACK[family_name]))
    assert tabular.evaluate(task, training.safe_policy).feasible      # Assumption 3.3 holds
    path = tmp_path / "training.npz"
    training.save(path)
    chunks = np.array_split(np.arange(400), 8)
    with make_executor("local", 2, jobs=len(chunks)) as executor:
        futures = [executor.submit(_attack_chunk, family_name, str(path), ATTACK[family_name],
                                   chunk.tolist(), 1000, 0.3) for chunk in chunks]
        results = [r for future in futures for r in future.result(timeout=1800)]
    violating = sum(v for v, _ in results)
    low, high = clopper_pearson(violating, len(results))
    print(f"\n{family_name} at theta* {ATTACK[family_name]}, delta 0.3: {violating}/400 runs "
          f"violate = {violating / 400:.4f} (95% CI {low:.4f}-{high:.4f}); mean final regret "
          f"{np.mean([r for _, r in results]):.1f}")
    assert violating / 400 <= 0.3


class Cube(Plane):
    """Three parameters: ``P = P_a + sum_i t_i (P_i - P_a)`` on [0, 1/3]^3."""

    parameter_names = ("t1", "t2", "t3")

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(9)
        self.kernels.append(rng.dirichlet(np.ones(4), size=(4, 2)))
        self.low, self.high = np.zeros(3), np.full(3, 1 / 3)

    def sample(self, n, seed):
        return np.random.default_rng(seed).uniform(self.low, self.high, (n, 3))

    def kernel(self, theta):
        a = self.kernels[0]
        return a + sum(t * (k - a) for t, k in zip(theta, self.kernels[1:], strict=True))


def test_three_parameters_cells_cover_the_set():
    """d = 3: points of a 31^3 lattice inside the set (its definition, recomputed here) lie in
    kept cells, which cover under 5% of the cube, and theta* is in a kept cell."""
    family = Cube()
    preset = CertifiedPreset(delta=0.05, cells=512)
    model = BoxModel(family, POLICIES, preset)
    truth = np.array([0.1, 0.2, 0.15])
    counts = _counts(family.build(truth), 600, 20, seed=5)
    axis = np.linspace(0, 1 / 3, 31)
    lattice = np.array([(a, b, c) for a in axis for b in axis for c in axis])
    in_set = _in_set_by_definition(family, model, counts, preset.delta, lattice)
    cells, level = model.cells(counts, preset.delta)
    assert len(in_set) > 5 and _inside(model, cells, level, in_set).all()
    assert len(cells) / 8**level < 0.05
    assert _inside(model, cells, level, truth[None])[0]
