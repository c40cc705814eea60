"""The hard family of App. G and its explicit lower bound."""

import math

import numpy as np
import pytest
from hypothesis import given, settings

from safepce import tabular
from safepce.bounds.covering import covering_number_sample
from safepce.bounds.hard_instance import (
    HardFamilyError,
    bernoulli_kl,
    check_hard_family,
    hard_families,
    hard_family,
    sample_lower_bound,
)


def test_structure_and_exact_properties():
    family = hard_family(2, 0.9, 0.1, 0.1)
    assert family.n_tasks == 4 and family.tasks[0].n_states == 3 * 2**3 - 1
    check = check_hard_family(family)
    assert check["slater_margin"] == pytest.approx(0.0, abs=1e-10)      # margin exactly xi
    assert check["distance_error"] < 1e-15                               # d = a2 for all pairs
    assert check["covering"] > 0                                         # a2 > radius
    assert check["constraint_active"] > 0
    # identification is needed: no task's optimum is eps-optimal and feasible on another task
    assert check["distinct"] > 0
    # the all-safe policy (a1 everywhere) has utility exactly xi (paper units)
    task = family.tasks[0]
    safe = np.zeros((task.n_states, 2))
    safe[:, 1] = 1.0
    safe[: 2 * family.n_tasks - 1] = [0.5, 0.5]                          # routing: any
    value = task.utility_form.cost_value_to_paper(tabular.evaluate(task, safe).cost_value)
    assert float(value) == pytest.approx(family.xi, rel=1e-9)


def test_a_policy_tuned_to_q2_is_infeasible_where_the_gate_has_q0():
    """The mechanism: M_1's optimum routes to gate 1 and mixes for p = q2; on M_0 (gate 1 has q0)
    that mixture violates the constraint, and M_0's optimum loses more than eps on M_1."""
    family = hard_family(1, 0.9, 0.1, 0.1)
    m0, m1 = family.tasks
    pi0, pi1 = tabular.solve(m0).policy, tabular.solve(m1).policy
    assert tabular.evaluate(m0, pi1).slack < 0
    form = m1.utility_form
    loss = form.reward_value_to_paper(tabular.solve(m1).reward_value
                                      - tabular.evaluate(m1, pi0).reward_value)
    assert float(loss) > family.eps


def test_covering_number_is_the_number_of_tasks():
    family = hard_family(2, 0.9, 0.1, 0.1)
    # the four tasks as points on a line a2 apart from M_0 (all pairs at distance a2 > radius)
    sample = np.repeat(np.arange(4) * family.a2, 1000)
    assert covering_number_sample(sample, family.covering_radius, 0.2) == 4


def test_lower_bound_formula():
    family = hard_family(3, 0.9, 0.1, 0.05)
    kl = family.q0 * math.log(family.q0 / family.q2) + (1 - family.q0) * math.log(
        (1 - family.q0) / (1 - family.q2))
    assert bernoulli_kl(family.q0, family.q2) == pytest.approx(kl)
    assert sample_lower_bound(family, 0.05) == pytest.approx(7 * math.log(5) / kl)
    # KL ~ a2^2 / (2 q0 (1 - q0)) for small a2: the bound scales like (xi eps)^-2
    assert kl == pytest.approx(family.a2**2 / (2 * family.q0 * (1 - family.q0)), rel=0.05)


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(m=-1), "^m"), (dict(gamma=1.0), "^gamma"), (dict(xi=0.0), "^xi"),
    (dict(c2=3.0, c3=2.0), "^c2"), (dict(eps=1e4), "^c1"), (dict(eps=0.5), "^eps: too large"),
    (dict(xi=9.0, eps=0.001), "^xi")])
def test_bad_parameters(kwargs, field):
    arguments = dict(m=2, gamma=0.9, xi=0.1, eps=0.1)
    arguments.update(kwargs)
    with pytest.raises(HardFamilyError, match=field):
        hard_family(**arguments)
    with pytest.raises(HardFamilyError, match="^delta"):
        sample_lower_bound(hard_family(1, 0.9, 0.1, 0.1), 0.3)


def test_sequential_identification_respects_the_lower_bound():
    """Under M_0 the algorithm must test every gate: its mean samples exceed the explicit bound,
    and it names the right task (so returns an eps-optimal feasible policy) at rate >= 1 - delta
    up to sampling error."""
    from safepce.bounds.hard_instance import sequential_identification

    family = hard_family(1, 0.9, 0.1, 0.1)
    runs = [sequential_identification(family, 0, 0.05, seed) for seed in range(30)]
    assert np.mean([r.samples for r in runs]) >= sample_lower_bound(family, 0.05)
    assert sum(not r.eps_optimal_and_feasible for r in runs) <= 5     # P(Bin(30, .05) > 5) < 1%
    found = [sequential_identification(family, 1, 0.05, seed) for seed in range(10)]
    assert sum(r.identified == 1 for r in found) >= 8
    assert all(r.eps_optimal_and_feasible == r.correct for r in found)


@settings(max_examples=4, deadline=None)
@given(hard_families())
def test_hard_family_strategy_keeps_app_g_promises(distribution):
    """Each drawn family is uniform over 2^m tasks whose pairwise distances equal a2 exactly."""
    import itertools

    tasks = distribution.tasks
    assert len(tasks) in (2, 4)
    distances = {round(tabular.distance(a, b), 15) for a, b in itertools.combinations(tasks, 2)}
    assert len(distances) == 1


def test_a_lower_bound_too_large_fails_the_identification_claim(monkeypatch):
    """Planted: the explicit lower bound x 1.9. verify's claim that a correct identification
    algorithm needs at least the bound's samples then fails. (It binds at the least mean samples
    / bound over the quick grid, 1.80: a bound x 1.5 would still pass, so the claim checks the
    bound's validity only up to that factor; the sequential test is not an optimal algorithm.)"""
    from safepce.bounds.claims import hard as verify

    real = verify.sample_lower_bound
    monkeypatch.setattr(verify, "sample_lower_bound", lambda family, delta: 1.9 * real(
        family, delta))
    identification = verify.slope_claims_on_grid(quick=True)[0][0]
    assert identification.claim.startswith("Theorem 5.1 lower bound: samples of a correct")
    assert identification.status == "failed" and identification.worst_margin < 0
