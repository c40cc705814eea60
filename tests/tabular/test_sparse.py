"""Sparse CMDPs end to end: construction, certified evaluation, the Lagrangian solver, the
scalable families and the simulator, each against a number obtained another way (the dense
code path, numpy's dense solve, scipy's own LP, the Bellman optimality equations)."""

import numpy as np
import pytest
import scipy.sparse as sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from safepce import tabular
from safepce.tabular.cmdp import InvalidCMDPError
from safepce.tabular.families import (
    gridworld,
    gridworld_layout,
    random_cmdp,
    random_sparse_cmdp,
    sparse_gridworld,
)
from safepce.tabular.lagrangian import solve_lagrangian
from safepce.tabular.linear import DiscountedSystem, policy_kernel


def as_sparse(task: tabular.CMDP) -> tabular.CMDP:
    S, A = task.n_states, task.n_actions
    return tabular.CMDP(sparse.csr_array(task.P.reshape(S * A, S)), task.r, task.cost,
                        task.budget, task.rho, task.gamma)


def scipy_lp(task: tabular.CMDP, with_budget: bool = True):
    """The occupancy LP written here from its definition (not tabular.solve's code): maximise
    <r, q> s.t. sum_a q(s', a) - gamma sum P(s'|s,a) q(s,a) = rho(s'), <cost, q> <= b, q >= 0."""
    S, A = task.n_states, task.n_actions
    kernel = sparse.csr_array(task.transition_matrix)
    flow = sparse.kron(sparse.eye(S), np.ones((1, A))) - task.gamma * kernel.T
    result = linprog(-task.r.reshape(-1), A_eq=flow, b_eq=task.rho,
                     A_ub=task.costs.reshape(S * A, -1).T if with_budget else None,
                     b_ub=task.budgets if with_budget else None, bounds=(0, None),
                     method="highs")
    return result


# --- construction ----------------------------------------------------------------------------


def test_sparse_task_keeps_the_kernel_sparse_and_equal_to_the_dense_one():
    dense = random_cmdp(9, 3, seed=4, n_constraints=2)
    task = as_sparse(dense)
    assert task.is_sparse and sparse.issparse(task.P)
    assert (task.n_states, task.n_actions, task.n_constraints) == (9, 3, 2)
    np.testing.assert_array_equal(task.dense_P, dense.P)
    np.testing.assert_array_equal(task.transition_matrix.toarray(), dense.P.reshape(27, 9))
    values = np.random.default_rng(0).random(9)
    np.testing.assert_allclose(task.next_values(values), dense.P @ values, rtol=1e-14)


@pytest.mark.parametrize("change, index, expected", [
    (lambda m: m.__setitem__((4, 2), -0.1), (1, 1, 2), "non-negative"),
    (lambda m: m.__setitem__((4, 2), np.nan), (1, 1, 2), "finite"),
    (lambda m: m.__setitem__((5, 0), m[5, 0] + 0.01), (1, 2, ":"), "rows summing to 1"),
])
def test_invalid_sparse_kernels_name_the_entry(change, index, expected):
    dense = random_cmdp(4, 3, seed=1)
    matrix = sparse.lil_array(dense.P.reshape(12, 4))
    change(matrix)
    with pytest.raises(InvalidCMDPError) as info:
        tabular.CMDP(sparse.csr_array(matrix), dense.r, dense.cost, dense.budget, dense.rho,
                     dense.gamma)
    assert info.value.field == "P" and info.value.index == index
    assert expected in str(info.value)


def test_sparse_kernel_of_the_wrong_shape_is_refused():
    dense = random_cmdp(4, 3, seed=1)
    with pytest.raises(InvalidCMDPError, match=r"shape \(S\*A, S\) = \(12, 4\)"):
        tabular.CMDP(sparse.csr_array(dense.P.reshape(4, 12)), dense.r, dense.cost,
                     dense.budget, dense.rho, dense.gamma)


# --- evaluation --------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_states=st.integers(2, 12), n_actions=st.integers(1, 4),
       n_constraints=st.sampled_from([None, 2]))
def test_sparse_evaluation_equals_the_dense_solve(seed, n_states, n_actions, n_constraints):
    dense = random_cmdp(n_states, n_actions, seed=seed, n_constraints=n_constraints,
                        concentration=0.3)
    task = as_sparse(dense)
    policy = np.random.default_rng(seed).dirichlet(np.ones(n_actions), n_states)
    a, b = tabular.evaluate(dense, policy), tabular.evaluate(task, policy)
    scale = 1 / (1 - dense.gamma)
    assert abs(a.reward_value - b.reward_value) <= 1e-10 * scale
    np.testing.assert_allclose(b.cost_value, a.cost_value, atol=1e-10 * scale, rtol=0)
    np.testing.assert_allclose(b.reward_state_values, a.reward_state_values, atol=1e-10 * scale)
    np.testing.assert_allclose(b.occupancy, a.occupancy, atol=1e-12)
    batch_a = tabular.evaluate_batch([dense, dense], [policy, np.full_like(policy, 1 / n_actions)])
    batch_b = tabular.evaluate_batch([task, task], [policy, np.full_like(policy, 1 / n_actions)])
    np.testing.assert_allclose(batch_b.reward_value, batch_a.reward_value, atol=1e-10 * scale)
    np.testing.assert_allclose(batch_b.cost_value, batch_a.cost_value, atol=1e-10 * scale)


@pytest.mark.parametrize("method", ["krylov", "lu", "auto"])
def test_discounted_system_meets_its_certified_bound(method):
    """The solve is within its residual bound of numpy's dense solve, and the bound is small;
    with gamma 0.999 on a grid (slow mixing) 'auto' must still certify (by LU)."""
    for task in (random_sparse_cmdp(400, seed=2), sparse_gridworld(0.2, 15, gamma=0.999)):
        if method == "krylov" and task.gamma > 0.99:
            continue
        policy = np.full((task.n_states, task.n_actions), 1 / task.n_actions)
        P_pi = policy_kernel(task.transition_matrix, policy)
        system = DiscountedSystem(P_pi, task.gamma, method=method)
        b = np.einsum("sa,sa->s", policy, task.r)
        x = system.solve(b)
        exact = np.linalg.solve(np.eye(task.n_states) - task.gamma * P_pi.toarray(), b)
        bound = system.error_bound(x, b)
        assert np.abs(x - exact).max() <= bound + 1e-12 * np.abs(exact).max()
        assert bound <= 1e-10 * np.abs(b).max() / (1 - task.gamma)
        y = system.solve_transposed(task.rho)
        exact_y = np.linalg.solve((np.eye(task.n_states) - task.gamma * P_pi.toarray()).T,
                                  task.rho)
        assert np.abs(y - exact_y).sum() <= system.error_bound(y, task.rho, transpose=True) \
            + 1e-12 * np.abs(exact_y).sum()


def test_krylov_only_raises_when_it_cannot_certify():
    task = sparse_gridworld(0.2, 15, gamma=0.999)
    P_pi = policy_kernel(task.transition_matrix, np.full((225, 4), 0.25))
    with pytest.raises(ArithmeticError, match="did not certify"):
        DiscountedSystem(P_pi, task.gamma, method="krylov").solve(task.r[:, 0])


# --- the Lagrangian solver ---------------------------------------------------------------------


def _bellman_residual(task, multiplier, values):
    """max_s |max_a (r - lambda cost + gamma P V) - V|: zero iff V is the optimal Lagrangian
    value function at lambda."""
    q = task.r - multiplier * task.costs[..., 0] + task.gamma * task.next_values(values)
    return float(np.abs(q.max(axis=1) - values).max())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 100_000), n_states=st.integers(1, 10), n_actions=st.integers(1, 4),
       concentration=st.sampled_from([0.1, 0.5, 2.0]),
       budget_fraction=st.sampled_from([-0.2, -0.01, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.2]))
def test_lagrangian_solution_is_the_lp_optimum(seed, n_states, n_actions, concentration,
                                               budget_fraction):
    """Against scipy's HiGHS on the LP written in this file: the same optimal value (1e-8 of
    the value scale); exactly feasible; randomising at <= 1 state (a vertex); and a duality
    certificate computed without any LP: V_lambda satisfies the Bellman optimality equation of
    r - lambda cost and V_r(pi) = rho V_lambda + lambda b (strong duality)."""
    base = random_cmdp(n_states, n_actions, seed=seed, concentration=concentration)
    negated = tabular.CMDP(base.P, -base.cost, base.cost, base.budget, base.rho, base.gamma)
    least = scipy_lp(negated, with_budget=False).fun          # min of <cost, q>
    greedy = tabular.evaluate(base, _reward_greedy(base)).cost_value
    # negative fractions: strictly infeasible even when greedy = least (one action)
    offset = 0.1 * budget_fraction if budget_fraction < 0 else 0.0
    task = base.with_budget(least + budget_fraction * (greedy - least) + offset)
    lp = scipy_lp(task)
    scale = 1 / (1 - task.gamma)
    if lp.status == 2:
        with pytest.raises(tabular.InfeasibleCMDPError) as info:
            tabular.solve(task, backend="lagrangian")
        assert info.value.minimum_cost == pytest.approx(least, abs=1e-9 * scale)
        return
    solution = tabular.solve(task, backend="lagrangian")
    assert solution.reward_value == pytest.approx(-lp.fun, abs=1e-8 * scale)
    # exactly feasible, except when the budget is the least cost itself, known here only to
    # HiGHS's tolerance (then the least-cost policy, above b by at most that much)
    at_least_cost = task.budget - least <= 1e-7 * scale
    assert solution.cost_value <= task.budget + (1e-9 * scale if at_least_cost else 0)
    assert int(((solution.policy > 0).sum(axis=1) > 1).sum()) <= 1
    assert _bellman_residual(task, solution.multipliers, solution.lagrangian_values) \
        <= 1e-8 * scale
    dual = task.rho @ solution.lagrangian_values + solution.multipliers * task.budget
    assert dual == pytest.approx(solution.reward_value, abs=1e-8 * scale)


def _reward_greedy(task):
    """The unconstrained optimum (by the LP without its budget row, written here)."""
    result = scipy_lp(task, with_budget=False)
    q = result.x.reshape(task.n_states, task.n_actions)
    policy = np.zeros_like(q)
    policy[np.arange(task.n_states), q.argmax(axis=1)] = 1.0
    return policy


def test_lagrangian_equals_scipy_on_a_random_sparse_task():
    task = random_sparse_cmdp(300, seed=7)
    lp = scipy_lp(task)
    solution = tabular.solve(task)           # auto: the Lagrangian route for a sparse task
    assert solution.backend == "lagrangian"
    assert solution.reward_value == pytest.approx(-lp.fun, abs=1e-9, rel=1e-9)
    assert solution.cost_value <= task.budget
    assert solution.multipliers > 0          # the constraint binds on this family
    assert int(((solution.policy > 0).sum(axis=1) > 1).sum()) == 1


def test_lagrangian_on_the_paper_gridworld_matches_the_published_optima():
    for noise, published in tabular.families.PAPER_GRIDWORLD_OPTIMA.items():
        for task in (gridworld(noise), sparse_gridworld(noise, 7)):
            result = solve_lagrangian(task)
            value = tabular.evaluate(task, result.policy)
            assert value.reward_value == pytest.approx(published, abs=1e-5)
            assert value.cost_value <= 1.5


def test_auto_keeps_the_lp_for_small_dense_tasks():
    assert tabular.solve(gridworld(0.3)).backend == "highspy"
    with pytest.raises(InvalidCMDPError, match="one constraint"):
        tabular.solve(random_cmdp(4, 2, seed=0, n_constraints=2), backend="lagrangian")


def test_highspy_lp_takes_a_sparse_task_with_two_constraints():
    dense = random_cmdp(6, 3, seed=3, n_constraints=2)
    a = tabular.solve(dense, backend="highspy")
    b = tabular.solve(as_sparse(dense))       # auto: highspy (K = 2)
    assert b.backend == "highspy"
    assert b.reward_value == pytest.approx(a.reward_value, abs=1e-9)


# --- families ----------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.13, 0.3, 0.4, 1.0])
def test_sparse_gridworld_of_side_7_is_the_papers_task(noise):
    dense, task = gridworld(noise), sparse_gridworld(noise, 7)
    np.testing.assert_array_equal(task.dense_P, dense.P)
    for name in ("r", "cost", "rho"):
        np.testing.assert_array_equal(getattr(task, name), getattr(dense, name))


def test_gridworld_layout_generalises_the_papers_rules():
    assert gridworld_layout(7) == (tabular.families.GOAL_STATE, tabular.families.HAZARD_STATES)
    goal, hazards = gridworld_layout(10)
    assert goal == 9 * 10 + 5
    assert hazards == tuple(sorted(y * 10 + x for x in (4, 6) for y in range(1, 8)))
    with pytest.raises(InvalidCMDPError, match="size"):
        gridworld_layout(3)


def test_large_gridworld_distance_is_affine_in_the_noise():
    """0.75 |p - p'| on every side (the distribution's distance_scale), by tabular.distance."""
    a, b = sparse_gridworld(0.2, 30), sparse_gridworld(0.35, 30)
    assert tabular.distance(a, b, units="task") == pytest.approx(0.75 * 0.15, abs=1e-12)
    distribution = tabular.families.make("gridworld", size=30)
    assert distribution.build([0.3]).is_sparse and distribution.build([0.3]).n_states == 900


def test_random_sparse_cmdp_has_distinct_successors_and_is_reproducible():
    task = random_sparse_cmdp(500, seed=11, n_successors=10)
    counts = np.diff(task.transition_matrix.indptr)
    assert np.all(counts == 10)
    again = random_sparse_cmdp(500, seed=11, n_successors=10)
    assert (task.transition_matrix != again.transition_matrix).nnz == 0
    assert task.budget == again.budget
    # the default budget is the uniform policy's cost (so that policy is feasible, exactly)
    uniform = np.full((500, 4), 0.25)
    assert tabular.evaluate(task, uniform).cost_value == pytest.approx(task.budget, rel=1e-12)


# --- simulation --------------------------------------------------------------------------------


def test_simulating_a_sparse_copy_gives_the_same_bits():
    dense = gridworld(0.35)
    task = sparse_gridworld(0.35, 7)
    policy = np.full((49, 4), 0.25)
    a = tabular.simulate(dense, policy, 500, 600, seed=9)
    b = tabular.simulate(task, policy, 500, 600, seed=9)
    np.testing.assert_array_equal(a.reward_return, b.reward_return)
    np.testing.assert_array_equal(a.cost_return, b.cost_return)
    ta = tabular.simulate_trajectories(dense, policy, 20, 50, seed=2)
    tb = tabular.simulate_trajectories(task, policy, 20, 50, seed=2)
    np.testing.assert_array_equal(ta.states, tb.states)


def test_monte_carlo_mean_on_a_large_sparse_task_matches_the_exact_value():
    """Truncation at H = 300 with gamma 0.9 leaves 0.9^300 / 0.1 < 1e-12; tolerance 4 SE."""
    task = random_sparse_cmdp(3000, seed=5)
    policy = np.random.default_rng(1).dirichlet(np.ones(4), 3000)
    exact = tabular.evaluate(task, policy)
    result = tabular.simulate(task, policy, 4000, 300, seed=3)
    for sample, value in ((result.reward_return, exact.reward_value),
                          (result.cost_return, exact.cost_value)):
        se = sample.std(ddof=1) / np.sqrt(sample.size)
        assert abs(sample.mean() - value) <= 4 * se


def test_warm_started_sequence_gives_the_cold_optima():
    """solve_sequence (each Lagrangian solve from its neighbour's actions and multiplier) on a
    sweep of a sparse family and of the 20x20 gridworld: every optimum equal to the cold
    solve's (1e-9 of the value scale), feasible, and certified by the Bellman equation."""
    family = tabular.distributions.random_sparse_family(n_states=300, seed=3)
    sweeps = [[family.build([t]) for t in np.linspace(0.0, 1.0, 7)],
              [sparse_gridworld(p, 20) for p in (0.1, 0.2, 0.25, 0.3, 0.4)]]
    for tasks in sweeps:
        for task, warm in zip(tasks, tabular.solve_sequence(tasks), strict=True):
            cold = tabular.solve(task, backend="lagrangian")
            scale = 1 / (1 - task.gamma)
            assert warm.reward_value == pytest.approx(cold.reward_value, abs=1e-9 * scale)
            assert warm.cost_value <= task.budget
            assert _bellman_residual(task, warm.multipliers, warm.lagrangian_values) \
                <= 1e-8 * scale


def test_infeasible_sparse_task_reports_the_least_cost_of_scipys_lp():
    task = random_sparse_cmdp(200, seed=9)
    negated = tabular.CMDP(task.P, -task.cost, task.cost, task.budget, task.rho, task.gamma)
    least = scipy_lp(negated, with_budget=False).fun
    with pytest.raises(tabular.InfeasibleCMDPError) as info:
        tabular.solve(task.with_budget(0.9 * least))
    assert info.value.minimum_cost == pytest.approx(least, rel=1e-9)
    assert tabular.minimum_cost(task) == pytest.approx(least, rel=1e-9)


def test_values_solves_certify_by_shifted_backups_on_a_random_kernel(count_calls):
    """On a random kernel (fast mixing) the values solve is certified by the Bellman backups with
    MacQueen's constant shift alone (no GMRES, no LU), within its bound of the dense solve, and
    in fewer backups than plain ones would need: the constant part of the error contracts only
    like gamma = 0.9, which alone needs log(1e-11) / log(0.9) = 240 backups."""
    from safepce.tabular import linear

    task = random_sparse_cmdp(2000, seed=5)
    actions = np.random.default_rng(0).integers(0, task.n_actions, task.n_states)
    system = DiscountedSystem.for_actions(task, actions)
    b = task.r[np.arange(task.n_states), actions]
    calls = count_calls(linear, "_backup_span")
    x = system.solve(b)
    assert system.method == "backups"
    assert len(calls) <= 60
    exact = np.linalg.solve(np.eye(task.n_states) - task.gamma
                            * task.transition_matrix.toarray()[
                                np.arange(task.n_states) * task.n_actions + actions], b)
    bound = system.error_bound(x, b)
    assert bound <= 1e-11 * np.abs(b).max() / (1 - task.gamma)
    assert np.abs(x - exact).max() <= bound + 1e-13


def test_visit_solves_certify_by_backups_from_a_start_of_the_right_total():
    """The transposed (visits) solve on a random kernel is certified by backups alone, within
    its 1-norm bound of the dense solve, from a cold start and from a guess of the wrong total
    (rescaled): a start whose total is off keeps a part along the stationary distribution that
    contracts only like gamma (240 backups for 1e-11), so it would stall into GMRES."""
    task = random_sparse_cmdp(2000, seed=6)
    actions = np.random.default_rng(1).integers(0, task.n_actions, task.n_states)
    rows = np.arange(task.n_states) * task.n_actions + actions
    exact = np.linalg.solve((np.eye(task.n_states) - task.gamma
                             * task.transition_matrix.toarray()[rows]).T, task.rho)
    for guess in (None, 3.0 * exact + 0.01):
        system = DiscountedSystem.for_actions(task, actions)
        y = system.solve_transposed(task.rho, guess=guess)
        assert system.method == "backups"
        bound = system.error_bound(y, task.rho, transpose=True)
        assert bound <= 1e-11 / (1 - task.gamma)
        assert np.abs(y - exact).sum() <= bound + 1e-13
