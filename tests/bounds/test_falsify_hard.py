"""The lower bound's premise on App. G's hard family, attacked over constants and policies
(bounds.falsify_hard): both routes agree with each other and with a brute-force check, the claim
survives the search where it binds, and a premise that no longer filters turns it red."""

import dataclasses

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import falsify, falsify_hard
from safepce.bounds.hard_instance import hard_family

BUDGET = falsify.SearchBudget("test", extremes=150, hypothesis_examples=30, restarts=2,
                              evaluations_per_restart=150)


def instances(seed: int, n: int):
    space = falsify_hard.HardPolicySpace()
    return [i for i in space.extremes(np.random.default_rng(seed), n)
            if falsify_hard.HARD_DISJOINT.premise(i)]


def test_exact_route_agrees_with_the_toolkit_on_many_policies():
    cases = instances(0, 30)
    assert len(cases) >= 5
    for instance in cases:
        fast = falsify_hard.toolkit_ratio(instance)
        exact = float(falsify_hard.exact_ratio(instance))
        assert fast == pytest.approx(exact, rel=1e-9, abs=1e-9)


def test_exact_optimum_is_the_lp_optimum():
    """The exact route's optimum (a finite LP over gate outcomes, solved by its vertices)
    against tabular.solve's occupancy LP."""
    family = hard_family(2, 0.9, 0.1, 0.1)
    instance = falsify_hard.HardPolicyInstance(2, 0.9, 0.1, 0.1, 1.5, 1, np.full(7, 0.5),
                                               np.full(4, 0.5))
    for task in family.tasks:
        _, _, best = falsify_hard._exact_task_values(task, instance)
        assert float(best) == pytest.approx(tabular.solve(task).reward_value, rel=1e-9)


def test_the_premise_is_the_toolkits_own_check():
    """_premise reproduces check_hard_family's ``distinct`` for the pair (M_0, M_i)."""
    from safepce.bounds.hard_instance import check_hard_family

    family = hard_family(1, 0.9, 0.1, 0.1)
    instance = falsify_hard.HardPolicyInstance(1, 0.9, 0.1, 0.1, 1.5, 1, np.full(3, 0.5),
                                               np.full(2, 0.5))
    assert falsify_hard.HARD_DISJOINT.premise(instance) == (check_hard_family(family)["distinct"]
                                                           > 0)


def test_the_claim_survives_the_search():
    result = falsify.falsify(falsify_hard.HARD_DISJOINT, BUDGET, seed=0)
    assert result.status == "passed" and result.routes_agree
    assert 0.9 < result.worst_ratio <= 1 + falsify.TOLERANCE


def test_a_construction_with_c3_too_small_fails_without_the_check(monkeypatch, tmp_path):
    """Planted: c3 twenty times too close to c2 (q2 nearly q1) and the toolkit's optima-only
    check dropped from the premise: the search finds a policy eps-optimal and feasible on both
    M_0 and M_i, i.e. the lower bound's premise fails. With the check in place every such
    construction is filtered out (the search reports that the premise held nowhere)."""
    real = falsify_hard.hard_family

    def small_c3(m, gamma, xi, eps, c1=1.5):
        return real(m, gamma, xi, eps, c1=c1, c2=1.0, c3=1.0 + 0.05 * 8 / gamma ** (2 * m + 4))

    monkeypatch.setattr(falsify_hard, "hard_family", small_c3)
    falsify_hard._pair.cache_clear()
    try:
        unchecked = dataclasses.replace(
            falsify_hard.HARD_DISJOINT,
            premise=lambda instance: 1 <= instance.task < 2 ** instance.m)
        result = falsify.falsify(unchecked, BUDGET, seed=0)
        assert result.status == "failed" and result.worst_ratio > 1.05
        path = falsify.save_counterexample(tmp_path, unchecked, result)
        assert falsify.replay(path, unchecked)["refutes"]
        with pytest.raises(falsify.FalsifyError, match="premise held on none"):
            falsify.falsify(falsify_hard.HARD_DISJOINT, BUDGET, seed=0)
    finally:
        falsify_hard._pair.cache_clear()
