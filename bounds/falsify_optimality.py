"""Lemma C.4 of the paper (App. C.2, p. 15; proof App. C.3.3, p. 18) as a ratio claim for
:mod:`safepce.bounds.falsify`.

The lemma: with Assumption 3.3 (one policy xi-feasible on every task) and 2 L eps <= xi, for any
task M and any M_i, M_j in B(M, eps), an optimal policy pi*_i of M_i is
2 eps L (1 + 2/(xi (1-gamma)))-optimal in M_j; the proof's conclusion is the interval
V*_j - 2 eps L (1 + 2/(xi (1-gamma))) <= V_r^{M_j}(pi*_i) <= V*_j + 4 eps L/(xi (1-gamma)).

Instances are :class:`~safepce.bounds.falsify.TaskPair` s (paper units: r in [0, 1], utility c in
[-1, 1], feasible iff V_c >= 0): M_i, M_j are its two tasks, M their midpoint (every ingredient
averaged; the task distance is a maximum of norms, so d(M, M_i) = d(M, M_j) = d(M_i, M_j)/2 =:
eps), and the pair's policy is the Slater witness: xi = its least utility value over M_i, M_j
and M. The ratio is the largest of the two sides of the interval, each divided by its bound, for
(i, j) = (1, 2) and (2, 1). Fast route: :func:`safepce.tabular.solve` for pi*_i and V*_j,
:func:`safepce.tabular.evaluate` for values. Second route: the optimal values by the occupancy LP
written here and solved by HiGHS through ``scipy.optimize.linprog`` (an independent solver
call), the toolkit's pi*_i checked optimal against it, and every policy value in exact rational
arithmetic (:func:`safepce.bounds.falsify.exact_values`).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

from safepce import tabular
from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError

from .falsify import MIN_DISTANCE, RatioClaim, TaskPair, TaskPairSpace, exact_values
from .upper import lemma_c_4

#: the toolkit's optimal policy must reach the independent LP's optimum to this (absolute, in
#: value units) for the second route to accept it
OPTIMALITY_TOLERANCE = 1e-7
#: the second route's answer when the toolkit's pi*_i misses the LP optimum (a toolkit bug): far
#: from any ratio the fast route can give, so the two routes disagree and the claim fails
NOT_OPTIMAL = Fraction(10**12)


def midpoint(pair: TaskPair) -> tuple:
    """(P, r, c, rho) of the task halfway between the pair's two tasks."""
    return ((pair.P1 + pair.P2) / 2, (pair.r1 + pair.r2) / 2, (pair.c1 + pair.c2) / 2,
            (pair.rho1 + pair.rho2) / 2)


def _ingredients(pair: TaskPair) -> tuple[tuple, tuple, tuple]:
    return ((pair.P1, pair.r1, pair.c1, pair.rho1), (pair.P2, pair.r2, pair.c2, pair.rho2),
            midpoint(pair))


def _cost_form(P, r, c, rho, gamma) -> tabular.CMDP:
    """The toolkit's cost form of a paper-unit task (as :attr:`TaskPair.tasks`)."""
    return tabular.CMDP(P, r, 1.0 - c, 1.0 / (1.0 - gamma), rho, gamma)


@lru_cache(maxsize=2048)
def _toolkit(pair: TaskPair) -> dict | None:
    """Optimal policies and values, values of each optimum on the other task, and xi, by the
    toolkit's solver and evaluator; None when a task has no feasible policy."""
    tasks = [_cost_form(*ingredients, pair.gamma) for ingredients in _ingredients(pair)]
    try:
        solutions = [tabular.solve(task) for task in tasks[:2]]
    except InputError:
        return None
    if any(not np.isfinite(s.reward_value) for s in solutions):
        return None
    budget = 1.0 / (1.0 - pair.gamma)
    xi = min(budget - float(np.ravel(tabular.evaluate(task, pair.policy).cost_value)[0])
             for task in tasks)
    cross = [tabular.evaluate(tasks[1 - k], solutions[k].policy).reward_value for k in (0, 1)]
    return {"policies": [s.policy for s in solutions],
            "optima": [float(s.reward_value) for s in solutions],
            "cross": [float(v) for v in cross], "xi": xi,
            "distance": tabular.distance(tasks[0], tasks[1], units="task")}


def _premise(pair: TaskPair) -> bool:
    """Assumption 3.3 on {M_i, M_j, M} with the pair's policy (xi > 0), 2 L eps = L d <= xi, and
    d >= MIN_DISTANCE (two different tasks)."""
    values = _toolkit(pair)
    if values is None:
        return False
    L = simulation_lemma_constant(pair.gamma)
    return (values["xi"] > 0 and values["distance"] >= MIN_DISTANCE
            and L * values["distance"] <= values["xi"])


def _ratio(optima, cross, xi, distance, gamma):
    """max over (i, j) of (V*_j - V_j(pi*_i)) / (2 eps L (1 + 2/(xi (1-gamma)))) and
    (V_j(pi*_i) - V*_j) / (4 eps L / (xi (1-gamma))), eps = d/2; the first bound by
    :func:`safepce.bounds.upper.lemma_c_4` on the fast route, restated on the exact one."""
    L = simulation_lemma_constant(gamma)
    eps = distance / 2
    if isinstance(distance, Fraction):
        L, gamma = Fraction(L), Fraction(gamma)
        below = 2 * eps * L * (1 + 2 / (xi * (1 - gamma)))
    else:
        below = lemma_c_4(eps, xi, gamma)
    above = 4 * eps * L / (xi * (1 - gamma))
    ratios = []
    for i in (0, 1):
        j = 1 - i
        ratios += [(optima[j] - cross[i]) / below, (cross[i] - optima[j]) / above]
    return max(ratios)


def toolkit_ratio(pair: TaskPair) -> float:
    values = _toolkit(pair)
    if values is None:
        raise InputError("a task of the pair has no feasible policy")
    return float(_ratio(values["optima"], values["cross"], values["xi"], values["distance"],
                        pair.gamma))


def lp_optimum(P, r, c, rho, gamma) -> float:
    """max V_r subject to V_c >= 0 over discounted occupancies q >= 0 with sum_a q(s', a) -
    gamma sum_{s, a} P(s' | s, a) q(s, a) = rho(s') (paper units), by HiGHS through scipy."""
    from scipy.optimize import linprog

    S, A = r.shape
    flow = np.zeros((S, S * A))
    for s in range(S):
        flow[s, s * A:(s + 1) * A] += 1
    flow -= gamma * P.reshape(S * A, S).T
    result = linprog(-r.ravel(), A_ub=-c.ravel()[None], b_ub=[0.0], A_eq=flow, b_eq=rho,
                     bounds=(0, None), method="highs")
    if result.status != 0:
        raise InputError(f"the occupancy LP has no optimum (status {result.status})")
    return float(-result.fun)


def exact_ratio(pair: TaskPair) -> Fraction:
    """The ratio by the second route: optimal values by :func:`lp_optimum`, the toolkit's
    pi*_i accepted only where it reaches them (else :data:`NOT_OPTIMAL`), values and xi in
    rational arithmetic."""
    from .falsify import exact_distance

    values = _toolkit(pair)
    ingredients = _ingredients(pair)
    optima = [Fraction(lp_optimum(*ingredients[k], pair.gamma)) for k in (0, 1)]
    cross = []
    for i in (0, 1):
        own = exact_values(*ingredients[i][:3], ingredients[i][3], values["policies"][i],
                           pair.gamma)[0]
        if abs(float(own - optima[i])) > OPTIMALITY_TOLERANCE:
            return NOT_OPTIMAL                      # the routes then disagree: claim failed
        j = 1 - i
        cross.append(exact_values(*ingredients[j][:3], ingredients[j][3], values["policies"][i],
                                  pair.gamma)[0])
    xi = min(exact_values(P, r, c, rho, pair.policy, pair.gamma)[1]
             for P, r, c, rho in ingredients)
    return _ratio(optima, cross, xi, exact_distance(pair), pair.gamma)


LEMMA_C4 = RatioClaim(
    "lemma-c4", "Lemma C.4",
    "with Assumption 3.3 and 2 L eps <= xi, for M_i, M_j in B(M, eps) an optimal policy of M_i "
    "has V*_j - 2 eps L (1 + 2/(xi (1-gamma))) <= V_r^{M_j}(pi*_i) <= V*_j + 4 eps L/(xi "
    "(1-gamma)) (App. C.2 p. 15, proof App. C.3.3)",
    "paper-statement", TaskPairSpace(), toolkit_ratio, exact_ratio, _premise, agreement=1e-6)

__all__ = ["LEMMA_C4", "exact_ratio", "lp_optimum", "midpoint", "toolkit_ratio"]
