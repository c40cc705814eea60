"""Coverage oracles and Subroutine 3 against a brute-force greedy; O_l and O_s exactly."""

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular.distributions import FiniteUniform, GridworldNoise, UniformInterval
from safepce.theory.oracles import (
    DesignatedSafePolicy,
    DistanceCoverage,
    ParameterCoverage,
    SafePolicyError,
    TrainingInputError,
    WorstCaseSafePolicy,
    greedy_cover_sparse,
)


def brute_force_greedy(adjacency: np.ndarray, max_uncovered: float) -> list[int]:
    """Subroutine 3 written literally on a dense 0/1 matrix (ties: smallest index)."""
    n = adjacency.shape[0]
    uncovered, chosen = set(range(n)), []
    while len(uncovered) > max_uncovered:
        gains = [-1 if j in chosen else sum(adjacency[i, j] for i in uncovered)
                 for j in range(n)]
        j = int(np.argmax(gains))
        chosen.append(j)
        uncovered -= {i for i in range(n) if adjacency[i, j]}
    return chosen


def _dense_parameter_matrix(theta, radius):
    return (np.abs(theta[:, None, 0] - theta[None, :, 0]) <= radius).astype(int)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_cover_equals_brute_force(seed):
    D = GridworldNoise()
    theta = D.sample(300, seed=seed)
    dense = _dense_parameter_matrix(theta, 0.005)
    expected = brute_force_greedy(dense, 3 * 0.05 * 300)
    cover = ParameterCoverage(0.005).greedy_cover(theta, D, 3 * 0.05 * 300)
    assert cover.indices.tolist() == expected
    covered = dense[:, cover.indices].any(axis=1)
    assert cover.n_uncovered == np.count_nonzero(~covered) <= 45


def test_sparse_matrix_and_cover_match_dense():
    D = GridworldNoise()
    theta = D.sample(400, seed=4)
    oracle = ParameterCoverage(0.004)
    matrix = oracle.coverage_matrix(theta, D).toarray()
    dense = _dense_parameter_matrix(theta, 0.004)
    assert np.array_equal(matrix > 0, dense > 0)
    sparse_cover = greedy_cover_sparse(oracle.coverage_matrix(theta, D), 60)
    assert sparse_cover.indices.tolist() == brute_force_greedy(dense, 60)


def test_distance_coverage_matches_tabular_distance():
    """Generic path (no distance_scale): the sparse matrix equals thresholding tabular.distance."""
    D = UniformInterval(0.2, 0.4, lambda p: tabular.gridworld(p), name="noise")
    theta = D.sample(60, seed=0)
    tasks = D.build_many(theta)
    dense = np.array([[tabular.distance(a, b) <= 0.01 for b in tasks] for a in tasks])
    matrix = DistanceCoverage(0.01).coverage_matrix(theta, D).toarray() > 0
    assert np.array_equal(matrix, dense)
    # the interval shortcut of a family with a known scale gives the same cover
    G = GridworldNoise()
    shortcut = DistanceCoverage(0.01).greedy_cover(theta, G, 5)
    generic = greedy_cover_sparse(DistanceCoverage(0.01).coverage_matrix(theta, D), 5)
    assert shortcut.indices.tolist() == generic.indices.tolist()
    assert shortcut.n_uncovered == generic.n_uncovered


def test_distance_coverage_on_a_finite_family():
    base = tabular.random_cmdp(4, 2, seed=0)
    r = np.array(base.r)
    tasks = [base]
    for shift in (0.02, 0.5):
        moved = r.copy()
        moved[0, 0] = min(1.0, moved[0, 0] + shift)
        tasks.append(tabular.CMDP(base.P, moved, base.cost, base.budget, base.rho, base.gamma))
    D = FiniteUniform(tasks)
    theta = np.arange(3.0)[:, None]
    dense = np.array([[tabular.distance(a, b) <= 0.1 for b in tasks] for a in tasks])
    assert np.array_equal(DistanceCoverage(0.1).coverage_matrix(theta, D).toarray() > 0, dense)


def test_twenty_thousand_tasks_cover_fast_and_small():
    import time
    import tracemalloc

    D = GridworldNoise()
    theta = D.sample(20_000, seed=0)
    tracemalloc.start()
    start = time.perf_counter()
    cover = DistanceCoverage(0.00375).greedy_cover(theta, D, 3 * 0.05 * 20_000)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6 and elapsed < 5.0
    assert 8 <= cover.indices.size <= 11


def test_radius_must_be_positive():
    with pytest.raises(TrainingInputError, match="^radius"):
        ParameterCoverage(0.0)
    with pytest.raises(TrainingInputError, match="^radius"):
        DistanceCoverage(float("nan"))


def test_designated_safe_policy_values_are_exact():
    D = GridworldNoise()
    tasks = D.build_many(np.array([[0.26], [0.3], [0.34]]))
    safe = DesignatedSafePolicy(0.4)(tasks, D)
    reference = tabular.solve(tabular.gridworld(0.4), backend="cvxpy").policy
    for task, u, v, margin in zip(tasks, safe.reward_values, safe.cost_values, safe.margin,
                                  strict=True):
        exact = tabular.evaluate(task, reference)
        assert u == pytest.approx(exact.reward_value, abs=1e-8)
        assert v == pytest.approx(exact.cost_value, abs=1e-8)
        assert margin == pytest.approx((1.5 - exact.cost_value) / 9.85, abs=1e-9)
    with pytest.raises(SafePolicyError, match="^xi"):
        DesignatedSafePolicy(0.4, xi=0.2)(tasks, D)


def test_worst_case_gradient_matches_finite_differences():
    task = tabular.random_cmdp(4, 3, seed=8, gamma=0.8)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3))

    def margin(z):
        return WorstCaseSafePolicy._margins_and_gradients(z, [task])

    value, gradient = margin(logits)
    h = 1e-6
    for s, a in [(0, 0), (1, 2), (3, 1)]:
        bumped = logits.copy()
        bumped[s, a] += h
        numeric = (margin(bumped)[0][0] - value[0]) / h
        assert gradient[0, s, a] == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_worst_case_safe_policy_improves_on_the_designated_one():
    D = GridworldNoise()
    tasks = D.build_many(np.array([[0.26], [0.3], [0.34]]))
    designated = DesignatedSafePolicy(0.4)(tasks, D)
    worst_case = WorstCaseSafePolicy()(tasks, D)
    assert worst_case.margin.min() >= designated.margin.min()
    exact = [tabular.evaluate(t, worst_case.policy).cost_value for t in tasks]
    assert np.allclose(worst_case.cost_values, exact)
    with pytest.raises(SafePolicyError, match="^xi"):
        WorstCaseSafePolicy(xi=0.5, iterations=20)(tasks, D)


def test_finite_family_cover_equals_the_greedy_on_every_sample():
    """The deduplicated greedy (distinct tasks weighted by multiplicity) picks the same sample
    indices as Subroutine 3 on the full N x N coverage matrix of the sample."""
    from safepce.tabular.distributions import runnable_family
    from safepce.theory.oracles import greedy_cover_sparse

    base = runnable_family(0)
    tasks = [base.build([t]) for t in (0.0, 0.001, 0.3, 0.302, 0.9)]
    family = FiniteUniform(tasks, weights=[0.3, 0.1, 0.25, 0.05, 0.3])
    for seed in range(5):
        theta = family.sample(400, seed)
        oracle = DistanceCoverage(0.0015)
        full = oracle.coverage_matrix(theta, family)        # N x N, duplicates included
        for max_uncovered in (0.0, 30.0, 120.0):
            expected = greedy_cover_sparse(full, max_uncovered)
            got = oracle.greedy_cover(theta, family, max_uncovered)
            assert got.indices.tolist() == expected.indices.tolist()
            assert got.n_uncovered == expected.n_uncovered


def test_distance_coverage_of_sparse_tasks_equals_the_dense_one():
    """A finite family given twice, dense and as sparse copies: the same coverage matrix (the
    sparse path builds features from the union of the kernels' non-zeros only), and both agree
    with tabular.distance pair by pair."""
    import scipy.sparse as sp

    dense = [tabular.families.random_cmdp(5, 2, seed=s, concentration=0.3) for s in range(6)]
    sparse_tasks = [tabular.CMDP(sp.csr_array(t.P.reshape(10, 5)), t.r, t.cost, t.budget,
                                 t.rho, t.gamma) for t in dense]
    theta = np.arange(6.0)[:, None]
    radius = float(np.median([tabular.distance(a, b) for a in dense for b in dense]))
    matrices = [DistanceCoverage(radius).coverage_matrix(theta, FiniteUniform(tasks)).toarray()
                for tasks in (dense, sparse_tasks)]
    assert np.array_equal(matrices[0] > 0, matrices[1] > 0)
    expected = np.array([[tabular.distance(a, b) <= radius for b in dense] for a in dense])
    assert np.array_equal(matrices[1] > 0, expected)


def test_plane_cover_picks_what_the_pair_list_picks():
    """The 2-D parameter oracle's sweep (no pair list) against Subroutine 3 on the explicit
    sparse coverage matrix: the same picks in the same order and the same uncovered count, on
    40 random samples (clipped normals, so with atoms of equal parameters at the clip). An
    off-by-one in the sweep (each box's x prefix one point short, or its y-rank range one
    short) changes the picks."""
    from safepce.theory.oracles import _PlaneCover, greedy_cover_sparse

    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(5, 400))
        theta = np.clip(rng.normal(0.3, 0.05, (n, 2)), 0.22, 0.4)
        width = float(rng.choice([0.005, 0.01, 0.03, 0.1]))
        allowed = float(rng.choice([0.0, 0.05, 0.15])) * n
        expected = greedy_cover_sparse(ParameterCoverage(width).coverage_matrix(theta, None),
                                       allowed)
        found = _PlaneCover.greedy(theta, width, allowed)
        np.testing.assert_array_equal(found.indices, expected.indices)
        assert found.n_uncovered == expected.n_uncovered
