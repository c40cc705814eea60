"""Every promise of tabular.strategies, checked against an independent computation: the Slater
margin against scipy's LP, the family's Slater policy by a linear solve written here, the
distances by the formula, the covering number by bitmask enumeration."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy.optimize import linprog

import safepce.tabular.strategies as cst

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def least_cost_by_scipy(task) -> float:
    """min over occupancies q >= 0 of <cost, q> s.t. sum_a q(s', a) - gamma sum P q = rho."""
    S, A = task.n_states, task.n_actions
    flow = np.zeros((S, S * A))
    for s in range(S):
        for a in range(A):
            flow[s, s * A + a] += 1.0
            flow[:, s * A + a] -= task.gamma * task.P[s, a]
    result = linprog(task.cost.reshape(-1), A_eq=flow, b_eq=task.rho, bounds=(0, None),
                     method="highs")
    assert result.status == 0
    return float(result.fun)


def value(task, policy, signal):
    """Exact discounted value rho^T (I - gamma P_pi)^-1 x_pi, solved here."""
    P_pi = np.einsum("sa,sat->st", policy, task.P)
    x_pi = np.einsum("sa,sa->s", policy, signal)
    return float(task.rho @ np.linalg.solve(np.eye(task.n_states) - task.gamma * P_pi, x_pi))


@FAST
@given(cst.cmdps(slater_margin=0.25))
def test_cmdps_keep_their_slater_margin(task):
    assert task.budget - least_cost_by_scipy(task) >= 0.25 - 1e-9
    assert task.n_states <= 4 and task.n_actions <= 3


@FAST
@given(cst.cmdps(n_states=3, n_actions=2, gamma=0.7))
def test_cmdps_take_fixed_sizes_and_are_feasible(task):
    assert (task.n_states, task.n_actions, task.gamma) == (3, 2, 0.7)
    assert task.budget >= least_cost_by_scipy(task) - 1e-9


@FAST
@given(cst.cmdps(slater_margin=0.25, n_constraints=3))
def test_cmdps_with_several_constraints_are_jointly_feasible_with_margin(task):
    """One occupancy meets all three budgets less 0.25 at once (scipy's LP, the flow constraints
    written here); the largest slack any single policy can keep on all K together is the
    promise, so per-constraint minima (which no policy may reach together) would fail it."""
    S, A, K = task.n_states, task.n_actions, task.n_constraints
    assert K == 3 and task.costs.shape == (S, A, 3)
    flow = np.zeros((S, S * A))
    for s in range(S):
        for a in range(A):
            flow[s, s * A + a] += 1.0
            flow[:, s * A + a] -= task.gamma * task.P[s, a]
    # maximise the common slack t: <c_k, q> + t <= b_k for every k
    costs = task.costs.reshape(S * A, K).T
    A_ub = np.hstack([costs, np.ones((K, 1))])
    result = linprog(np.r_[np.zeros(S * A), -1.0], A_ub=A_ub, b_ub=task.budgets,
                     A_eq=np.hstack([flow, np.zeros((S, 1))]), b_eq=task.rho,
                     bounds=[(0, None)] * (S * A) + [(None, None)], method="highs")
    assert result.status == 0 and -result.fun >= 0.25 - 1e-9


@FAST
@given(cst.task_families(slater_margin=0.5))
def test_families_share_a_slater_policy_and_know_their_distances(family):
    for task in family.tasks:
        slack = task.budget - value(task, family.slater_policy, task.cost)
        assert slack >= 0.5 - 1e-12
    for i, j in itertools.combinations(range(len(family.tasks)), 2):
        a, b = family.tasks[i], family.tasks[j]
        fa, fb = a.utility_form, b.utility_form
        expected = max(np.abs(fa.reward - fb.reward).max(), np.abs(fa.utility - fb.utility).max(),
                       0.5 * np.abs(a.rho - b.rho).sum(),
                       0.5 * np.abs(a.P - b.P).sum(axis=-1).max())
        assert family.distances[i, j] == pytest.approx(expected, abs=1e-12)


@FAST
@given(cst.task_families(n_tasks=(2, 5)))
def test_covering_numbers_by_bitmask_enumeration(family):
    n = len(family.tasks)
    for radius in sorted(set(family.distances.ravel().tolist())):
        near = family.distances <= radius
        best = min(bin(mask).count("1") for mask in range(1, 2**n)
                   if all(any(near[c, t] for c in range(n) if mask >> c & 1) for t in range(n)))
        assert family.covering_number(radius) == best
    assert family.covering_number(family.distances.max()) == 1


@FAST
@given(cst.cmdps().flatmap(lambda task: cst.mixtures(task).map(lambda m: (task, m))))
def test_policies_and_mixtures_are_distributions(pair):
    task, mixture = pair
    assert mixture.weights.sum() == pytest.approx(1.0) and (mixture.weights > 0).any()
    for policy in mixture.policies:
        assert policy.shape == (task.n_states, task.n_actions)
        assert np.allclose(policy.sum(axis=1), 1.0) and (policy >= 0).all()
