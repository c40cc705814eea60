"""Lemma C.4 as a ratio claim (bounds.falsify_optimality): its ratio on a one-state pair worked
out by hand, the independent LP against the toolkit's solver, the search's worst case, and
planted errors (a bound too small, a suboptimal solver) that turn it red."""

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import falsify, falsify_optimality, upper
from safepce.bounds.falsify_optimality import LEMMA_C4

BUDGET = falsify.SearchBudget("test", extremes=300, hypothesis_examples=60, restarts=2,
                              evaluations_per_restart=300)


def one_state_pair(gamma: float, shift: float) -> falsify.TaskPair:
    """Actions (reward 1, utility 0) and (reward 0, utility 1); M2 lowers the first utility by
    ``shift``; the Slater policy always takes the second action."""
    P = np.ones((1, 2, 1))
    r = np.array([[1.0, 0.0]])
    return falsify.TaskPair(gamma, P, P.copy(), r, r.copy(), np.array([[0.0, 1.0]]),
                            np.array([[-shift, 1.0]]), np.ones(1), np.ones(1),
                            np.array([[0.0, 1.0]]))


def test_one_state_ratio_by_hand():
    """V*_1 = h (first action), V*_2 = h/(1+delta) (mix lambda = 1/(1+delta)), xi = h,
    eps = delta/2: pi*_1 earns h on M2, above V*_2 by h delta/(1+delta) against 4 eps L/(xi
    (1-gamma)) = 2 delta L; pi*_2 earns h/(1+delta) on M1, below V*_1 by h delta/(1+delta)
    against delta L (1 + 2/(xi (1-gamma)))."""
    gamma, delta = 0.5, 0.01
    pair = one_state_pair(gamma, delta)
    h = 1 / (1 - gamma)
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    above = h * delta / (1 + delta) / (2 * delta * L)
    below = h * delta / (1 + delta) / (delta * L * (1 + 2 / (h * (1 - gamma))))
    assert LEMMA_C4.premise(pair)
    assert LEMMA_C4.ratio(pair) == pytest.approx(max(above, below), rel=1e-9)
    assert float(LEMMA_C4.exact_ratio(pair)) == pytest.approx(max(above, below), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_independent_lp_equals_the_toolkits_optimum(seed):
    rng = np.random.default_rng(seed)
    S, A, gamma = 4, 3, 0.8
    P = rng.dirichlet(np.ones(S), (S, A))
    r, c = rng.uniform(0, 1, (S, A)), rng.uniform(-1, 1, (S, A))
    c[:, 0] = 0.5                                   # a feasible action everywhere
    rho = rng.dirichlet(np.ones(S))
    task = tabular.CMDP(P, r, 1 - c, 1 / (1 - gamma), rho, gamma)
    assert falsify_optimality.lp_optimum(P, r, c, rho, gamma) == pytest.approx(
        tabular.solve(task).reward_value, abs=1e-8)


def test_a_bound_two_and_a_half_times_too_small_is_refuted(monkeypatch):
    """The claim binds within its factor 2 (verify's quick search: worst ratio 0.499, asserted
    in tests/bounds/test_sample_complexity.py): with L / 2.5 in both sides of the interval the
    quick search refutes it (exact route too). The test budget reaches only 0.33."""
    L = falsify_optimality.simulation_lemma_constant
    for module in (falsify_optimality, upper):        # both sides of the interval
        monkeypatch.setattr(module, "simulation_lemma_constant", lambda gamma: L(gamma) / 2.5)
    result = falsify.falsify(LEMMA_C4, falsify.QUICK, seed=0)
    assert result.status == "refuted" and float(result.exact_ratio) > 1.1


def test_a_suboptimal_solver_fails_by_route_disagreement(monkeypatch):
    """A toolkit solver returning a policy short of the optimum is caught by the second route."""
    solve = tabular.solve

    def worse(task, *args, **kwargs):
        solution = solve(task, *args, **kwargs)
        S, A = solution.policy.shape
        mixed = 0.9 * solution.policy + 0.1 / A
        evaluation = tabular.evaluate(task, mixed)
        return type(solution)(**{**solution.__dict__, "policy": mixed,
                                 "reward_value": evaluation.reward_value})

    monkeypatch.setattr(falsify_optimality.tabular, "solve", worse)
    falsify_optimality._toolkit.cache_clear()
    try:
        result = falsify.falsify(LEMMA_C4, BUDGET, seed=0)
    finally:
        falsify_optimality._toolkit.cache_clear()
    assert result.status == "failed" and not result.routes_agree
