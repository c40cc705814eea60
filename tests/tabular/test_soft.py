"""The entropy-regularised constrained solver against an exponential-cone program (Clarabel),
brute force over a policy grid, duality, and the LP limit."""

import math

import cvxpy as cp
import numpy as np
import pytest

from safepce import tabular
from safepce.tabular.soft import SoftSolverError, soft_evaluate, solve_soft


def _budgeted(seed: int, S: int = 5, A: int = 3, where: float = 0.5):
    """A random task whose budget lies ``where`` of the way from the minimum cost to the cost
    of the unconstrained soft optimum at temperature 0.5 (so the budget binds)."""
    task = tabular.random_cmdp(S, A, seed)
    free = solve_soft(tabular.CMDP(task.P, task.r, task.cost, 1e6, task.rho, task.gamma), 0.5)
    low = tabular.minimum_cost(task)
    budget = low + where * (free.cost_value - low)
    return tabular.CMDP(task.P, task.r, task.cost, budget, task.rho, task.gamma)


def _exponential_cone(task, beta: float) -> tuple[float, np.ndarray]:
    """The soft problem in occupancy measures, written independently: maximise
    <r, q> - beta sum q log(q / q_s) subject to flow and budget, solved by Clarabel."""
    S, A = task.n_states, task.n_actions
    q = cp.Variable((S, A), nonneg=True)
    q_s = cp.sum(q, axis=1)
    flow = [q_s[t] - task.gamma * cp.sum(cp.multiply(task.P[:, :, t], q)) == task.rho[t]
            for t in range(S)]
    budget = cp.sum(cp.multiply(task.cost, q)) <= task.budget
    entropy = -cp.sum(cp.rel_entr(q, cp.reshape(q_s, (S, 1), order="C") @ np.ones((1, A))))
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(task.r, q)) + beta * entropy),
                         flow + [budget])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    occupancy = np.maximum(q.value, 0)
    return problem.value, occupancy / occupancy.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_soft_optimum_matches_the_exponential_cone_program(seed, beta):
    task = _budgeted(seed)
    solution = solve_soft(task, beta)
    value, policy = _exponential_cone(task, beta)
    assert solution.objective == pytest.approx(value, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(solution.policy, policy, atol=1e-4)
    assert solution.cost_value <= float(task.budget) + 1e-9


def _two_state_task():
    P = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.05, 0.95]]])
    r = np.array([[0.0, 1.0], [0.3, 0.8]])
    cost = np.array([[0.0, 1.0], [0.1, 0.9]])
    return tabular.CMDP(P, r, cost, 2.0, np.array([0.6, 0.4]), 0.8)


def test_soft_optimum_beats_every_feasible_policy_on_a_grid():
    """Brute force on a 2-state, 2-action task: pi(1|s) on a 201 x 201 grid, values by the
    explicit Neumann series; no grid policy that meets the budget has a larger objective, and
    the best one is within the grid's resolution of the optimum."""
    task, beta = _two_state_task(), 0.3
    solution = solve_soft(task, beta)
    assert solution.multiplier > 0                     # the budget binds on this task
    grid = np.linspace(0, 1, 201)
    p0, p1 = (x.ravel() for x in np.meshgrid(grid, grid, indexing="ij"))
    pi = np.stack([np.stack([1 - p0, p0], -1), np.stack([1 - p1, p1], -1)], axis=1)  # (N, 2, 2)
    P_pi = np.einsum("nsa,sat->nst", pi, task.P)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(pi > 0, pi * np.log(pi), 0.0), axis=2)
    signals = np.stack([(pi * task.r).sum(2), (pi * task.cost).sum(2), ent], axis=2)  # (N,2,3)
    totals = np.zeros((len(p0), 3))
    dist, discount = np.broadcast_to(task.rho, (len(p0), 2)).copy(), 1.0
    for _ in range(200):                                # 0.8^200 ~ 4e-20
        totals += discount * np.einsum("ns,nsx->nx", dist, signals)
        dist, discount = np.einsum("ns,nst->nt", dist, P_pi), discount * task.gamma
    feasible = totals[:, 1] <= task.budget
    best = float(np.max(totals[feasible, 0] + beta * totals[feasible, 2]))
    assert best <= solution.objective + 1e-9
    assert best >= solution.objective - 1e-2


@pytest.mark.parametrize("seed", range(3))
def test_duality_and_complementary_slackness(seed):
    """Strong duality: the Lagrangian at the solver's multiplier, maximised over policies,
    equals the objective (u (b - V_cost) = 0), and no other multiplier gives a smaller dual."""
    task = _budgeted(seed)
    solution = solve_soft(task, 0.5)
    assert solution.multiplier > 0
    assert solution.cost_value == pytest.approx(float(task.budget), abs=1e-9)

    def dual(u):
        relaxed = tabular.CMDP(task.P, task.r - u * task.cost, task.cost, 1e6, task.rho,
                               task.gamma)
        free = solve_soft(relaxed, 0.5)
        return free.objective + u * float(task.budget)

    assert dual(solution.multiplier) == pytest.approx(solution.objective, abs=1e-8)
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert dual(factor * solution.multiplier) >= solution.objective - 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_small_temperature_approaches_the_lp_optimum(seed):
    """V* <= objective <= V* + beta ln(A) / (1 - gamma): a dropped 1/(1-gamma) or a wrong
    entropy base would break one side."""
    task = _budgeted(seed)
    optimum = tabular.solve(task).reward_value
    for beta in (1e-1, 1e-2):
        solution = solve_soft(task, beta)
        assert optimum - 1e-8 <= solution.objective
        assert solution.objective <= optimum + beta * math.log(task.n_actions) / (1 - task.gamma)
        assert solution.reward_value <= optimum + 1e-8


def test_soft_evaluate_entropy_of_the_uniform_policy():
    task = tabular.random_cmdp(4, 3, 0)
    _, _, entropy = soft_evaluate(task, np.full((4, 3), 1 / 3))
    assert entropy == pytest.approx(math.log(3) / (1 - task.gamma), rel=1e-12)


def test_bad_input_and_infeasible_budget():
    task = tabular.random_cmdp(4, 2, 1)
    with pytest.raises(SoftSolverError, match="temperature"):
        solve_soft(task, -1.0)
    with pytest.raises(SoftSolverError, match="temperature"):
        solve_soft(task, math.nan)
    impossible = tabular.CMDP(task.P, task.r, task.cost, 0.5 * tabular.minimum_cost(task),
                              task.rho, task.gamma)
    with pytest.raises(tabular.InfeasibleCMDPError):
        solve_soft(impossible, 1.0)
