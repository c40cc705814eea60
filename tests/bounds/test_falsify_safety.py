"""App. D / App. E as ratio claims (bounds.falsify_safety): the schedule they reason about is the
one Safe-PCE [theory] runs, Eq. 30 is refuted exactly, Lemma 4.5's induction binds at the base
case (so a weight constant a little too large breaks it), and Theorem 4.2's bound binds through
its terms (i) and (ii)."""

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import falsify, falsify_safety, upper
from safepce.bounds.falsify_safety import EQ_30, LEMMA_4_5, THEOREM_4_2, ScheduleInstance
from safepce.theory.algorithms.safe_pce import THEORY, SafePCE, mixture_weights_recursive

BUDGET = falsify.SearchBudget("test", extremes=300, hypothesis_examples=60, restarts=2,
                              evaluations_per_restart=300)


def paper_L(gamma):
    return 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2


def test_the_schedule_is_the_one_safe_pce_runs():
    """toolkit_schedule against a real Safe-PCE [theory] run on the slack pair (task 1: its
    first candidate is never eliminated): the same stage ends and weights."""
    from safepce.bounds.claims.runnable import PAIR
    from safepce.theory.harness import run_test_phase
    from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
    from safepce.theory.training import train

    family = tabular.distributions.slack_pair_family(PAIR["gamma"])
    training = train(family, DistanceCoverage(PAIR["eps"]), PAIR["delta"], seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)
    algorithm = SafePCE(training, family.tasks[1].utility_form, PAIR["horizon"], preset=THEORY,
                        eps=PAIR["eps"], delta=PAIR["delta"])
    K = 60_000
    record = run_test_phase(algorithm, family.tasks[1], K, PAIR["horizon"], seed=3)
    events = record.log["events"]
    assert not any(e["event"] == "eliminate" for e in events)
    ends = [e["episode"] for e in events if e["event"] == "stage"]
    weights = [e["alpha"] for e in events if e["event"] == "stage"]
    c = record.log["candidate_order"][0]
    instance = ScheduleInstance(PAIR["gamma"], PAIR["eps"], 0.1, float(algorithm.v_s[c]),
                                float(algorithm.v[c]), float(algorithm.u[c]),
                                float(algorithm.u_s[c]), 0, K, PAIR["delta"])
    schedule = falsify_safety.toolkit_schedule(instance)
    assert len(ends) >= 10
    assert list(np.cumsum([n for _, n in schedule])[: len(ends)]) == ends
    assert [a for a, _ in schedule][1: len(ends) + 1] == pytest.approx(weights, abs=1e-12)
    assert sum(n for _, n in schedule) == K


# --- Eq. 30 --------------------------------------------------------------------------------------


def test_eq_30_is_refuted_by_an_exact_replayable_counterexample(tmp_path):
    result = falsify.falsify(EQ_30, BUDGET, seed=0)
    assert result.status == "refuted" and result.routes_agree
    assert 1.05 < float(result.exact_ratio) < 1.5          # (1 - alpha_m)/(A eps) <= 1/C <= 1.5
    path = falsify.save_counterexample(tmp_path, EQ_30, result)
    replayed = falsify.replay(path)
    assert replayed["refutes"] and replayed["exact_ratio"] == result.exact_ratio
    # recomputed here in floats from App. D's recursion and Eq. 30's A_l written out
    instance = result.counterexample
    L, v, eps = paper_L(instance.gamma), instance.v_s, instance.eps
    kappa = (4 * L + 9) * eps
    m = math.ceil(math.log(eps) / math.log((2 * v + kappa) / (3 * v)))
    alpha = mixture_weights_recursive(v, eps, L, instance.gamma, m + 1)
    A = ((4 * L + 9 - v) * alpha[1] + v - kappa) / (v * alpha[1] + (v - kappa - v * alpha[1]) * eps)
    assert (1 - alpha[m]) / (A * eps) == pytest.approx(float(result.exact_ratio), rel=1e-6)
    # Eq. 28's indexing: one stage later the bound holds
    assert (1 - alpha[m + 1]) / (A * eps) <= 1


# --- Lemma 4.5 (App. D's induction) ------------------------------------------------------------


def test_lemma_4_5_base_case_is_tight_by_hand():
    """At m = 0 the worst pair is V_c(pi_s) = v_s/2 - eps(L+2), V_c(pi_l) = -1/(1-gamma), and
    alpha_1 of Eq. 6 makes V_c(pi_{l,1}) exactly 0: the ratio is exactly 1."""
    gamma, eps, v_s = 0.5, 1e-3, 0.8
    instance = ScheduleInstance(gamma, eps, 0.5, v_s, 0.3, 0.0, 0.0, 0, 10**6, 0.05)
    assert LEMMA_4_5.premise(instance)
    F = Fraction
    L = 1 / (1 - F(gamma)) + 2 * F(gamma) / (1 - F(gamma)) ** 2
    margin = F(v_s) - 2 * F(eps) * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - F(gamma)))
    worst = (1 - alpha_1) * (F(v_s) / 2 - F(eps) * (L + 2)) - alpha_1 / (1 - F(gamma))
    assert worst == 0
    assert LEMMA_4_5.exact_ratio(instance) == 1
    assert LEMMA_4_5.ratio(instance) == pytest.approx(1, abs=1e-12)


def test_lemma_4_5_survives_the_search_where_it_binds():
    result = falsify.falsify(LEMMA_4_5, BUDGET, seed=0)
    assert result.status == "passed" and result.routes_agree
    assert result.worst_ratio == pytest.approx(1, abs=1e-9)      # the base case binds


def _planted_weights(first=2.0, kappa=(4, 9)):
    """Eq. 6's weights by App. D's recursion with a planted constant: 2/(1-gamma) in alpha_1
    replaced by first/(1-gamma), or kappa = (a L + b) eps."""
    def weights(v_s, eps, L, gamma, n_stages):
        alpha = np.zeros(n_stages + 1)
        if n_stages == 0:
            return alpha
        margin = v_s - 2 * eps * (L + 2)
        alpha[1] = margin / (margin + first / (1 - gamma))
        k = (kappa[0] * L + kappa[1]) * eps
        for m in range(1, n_stages):
            alpha[m + 1] = alpha[m] * 3 * v_s / ((2 + alpha[m]) * v_s + k)
        return alpha
    return weights


@pytest.mark.parametrize("planted", [{"first": 1.9}, {"kappa": (2, 4)}],
                         ids=["alpha_1 with 1.9/(1-gamma)", "kappa = (2L+4) eps"])
def test_a_weight_a_little_too_large_deploys_an_infeasible_mixture(monkeypatch, planted):
    """The claim binds: alpha_1 with 1.9/(1-gamma) in place of 2/(1-gamma) (5% larger steps) or
    the induction's kappa (2L+4) eps in place of (4L+9) eps makes the toolkit's own schedule
    deploy a policy with V_c < 0 (ratio > 1 on the fast route), not only disagree."""
    monkeypatch.setattr(falsify_safety, "mixture_weights", _planted_weights(**planted))
    falsify_safety._toolkit_lp.cache_clear()
    try:
        result = falsify.falsify(LEMMA_4_5, BUDGET, seed=0)
    finally:
        falsify_safety._toolkit_lp.cache_clear()
    assert result.status != "passed"
    assert result.worst_ratio > 1.005


# --- Theorem 4.2 -------------------------------------------------------------------------------


def test_theorem_4_2_worst_regret_by_hand_on_one_stage():
    """K shorter than the first stage: one stage on pi_s, regret K (min(h, u_l + (i)/K) -
    (u_s - 2 s(K) - eps (L+2))) with s(K) = sqrt(2 ln(4K/delta)/(K (1-gamma)^2)), against App.
    E's four terms written out here."""
    gamma, eps, xi, K, delta = 0.5, 1e-4, 0.05, 400, 0.05
    instance = ScheduleInstance(gamma, eps, xi, 1.0, 0.5, 1.2, 1.5, 0, K, delta)
    assert THEOREM_4_2.premise(instance)
    assert len(falsify_safety.toolkit_schedule(instance)) == 1
    L, h, log_term = paper_L(gamma), 1 / (1 - gamma), math.log(4 * K / delta)
    s = math.sqrt(2 * log_term / (K * (1 - gamma) ** 2))
    term_i = 4 * eps * L * K * (1 + 1 / (xi * (1 - gamma)))
    deployed = 1.5 - 2 * s - eps * (L + 2)
    assert deployed > 0.5                   # the lower bound on V_r(pi_s) is not clipped at 0
    regret = K * (min(h, 1.2 + term_i / K) - deployed)
    kappa = (4 * L + 9) * eps
    margin = 1.0 - 2 * eps * (L + 2)
    a1 = margin / (margin + 2 / (1 - gamma))
    C = (2 + kappa) / 3
    stages = math.log(eps) / math.log(C)
    A = ((4 * L + 9 - 1) * a1 + 1 - kappa) / (a1 + (1 - kappa - a1) * eps)
    root = math.sqrt(2 * K * log_term * math.ceil(stages) / (1 - gamma) ** 2)
    bound = (term_i + 2 * K * A * eps / (1 - gamma)
             + 32 * math.sqrt(K * log_term * stages) / (1 - gamma) ** 2
             + eps * (L + 1) * K + root + eps * K + root)
    assert THEOREM_4_2.ratio(instance) == pytest.approx(regret / bound, rel=1e-9)
    assert float(THEOREM_4_2.exact_ratio(instance)) == pytest.approx(regret / bound, rel=1e-9)


def test_theorem_4_2_survives_the_search_and_binds():
    result = falsify.falsify(THEOREM_4_2, BUDGET, seed=0)
    assert result.status == "passed" and result.routes_agree
    assert 0.9 < result.worst_ratio <= 1


def _plant_a_fifth_of(monkeypatch, term):
    """App. E's bound with one of its four terms divided by 5."""
    original = upper.theorem_4_2_terms

    def planted(*args, **kwargs):
        bound = original(*args, **kwargs)
        return dataclasses.replace(bound, **{term: getattr(bound, term) / 5})

    monkeypatch.setattr(falsify_safety, "theorem_4_2_terms", planted)


@pytest.mark.parametrize("term", ["term_i", "term_ii"])
def test_an_app_e_term_five_times_too_small_is_refuted(monkeypatch, term):
    """Terms (i) and (ii) bind: either divided by 5 puts the worst regret above the bound (on
    the toolkit's route, not only a route disagreement). Terms (iii) and (iv) do not bind (see
    the next test)."""
    _plant_a_fifth_of(monkeypatch, term)
    # verify's quick budget (2-3 s a seed): (ii) binds only in a corner (gamma near 0, eps near
    # xi / (8L+18), u_s = 0). The hypothesis stage of a seed is not the same in every process
    # (measured for term (ii), seed 0: the stage reached 1.245 alone and 0.828 after
    # tests/bounds/test_falsify.py had run, the whole search 1.41 and 0.99), so one seed's
    # quick search can miss the corner; four seeds reached 1.42-1.44 in either order
    results = [falsify.falsify(THEOREM_4_2, falsify.QUICK, seed=seed) for seed in range(4)]
    assert all(result.status != "passed" for result in results if result.worst_ratio > 1)
    assert max(result.worst_ratio for result in results) > 1.1


@pytest.mark.parametrize("term", ["term_iii", "term_iv"])
def test_terms_iii_and_iv_five_times_too_small_still_pass(monkeypatch, term):
    """Measured slack, kept as a fact: with (iii) or (iv) / 5 the worst ratio stays below 1
    (their eps K parts are matched exactly by the regret, their square roots are a small share
    of the bound wherever the ratio is large)."""
    _plant_a_fifth_of(monkeypatch, term)
    result = falsify.falsify(THEOREM_4_2, falsify.QUICK, seed=0)
    assert result.worst_ratio < 1


def test_schedule_counterexample_files_round_trip(tmp_path):
    instance = ScheduleInstance(0.5, 1e-4, 0.05, 1.0, 0.5, 1.2, 1.5, 3, 1000, 0.05)
    instance.save(tmp_path / "x.npz")
    assert ScheduleInstance.load(tmp_path / "x.npz") == instance
    with pytest.raises(falsify.FalsifyError, match="schedule counterexample"):
        ScheduleInstance.load(tmp_path / "missing.npz")


# --- Corollary F.1 (PCE): the last episode of an eliminated phase ---------------------------------


def test_corollary_f_1_counterexample_is_a_run_consistent_with_every_event():
    """The regret the claim counts for an eliminated phase is realised by explicit returns: the
    test (Ineq. 5's width w) passes at every k < n and fails at n, Ineq. 22 holds at every k <= n
    for the chosen V_r, every return lies in [0, 1/(1-gamma)]; the phase's regret and bound (1)
    written out here give the claim's ratio (> 1)."""
    gamma, eps, xi, u, n, E, delta = 0.5, 1e-6, 1.8000066, 2.0, 67, 2, 0.2
    instance = falsify_safety.PhaseInstance(gamma, eps, xi, u, n, E, delta)
    K, h, L = n * E, 1 / (1 - gamma), paper_L(gamma)
    log_term = math.log(4 * K / delta)

    def s(k):
        return math.sqrt(2 * log_term / (k * (1 - gamma) ** 2))

    def w(k):
        return s(k) + eps * (L + 1)

    tiny = 1e-9
    v_r = u - w(n - 1) - eps - s(n - 1) + tiny              # V_r(pi_1) of the eliminated one
    mean_n = v_r + eps + s(n) - tiny
    returns = [u - w(n - 1)] * (n - 1) + [n * mean_n - (n - 1) * (u - w(n - 1))]
    means = np.cumsum(returns) / np.arange(1, n + 1)
    assert all(0 <= r <= h for r in returns)
    assert all(abs(means[k - 1] - u) <= w(k) for k in range(1, n))      # survives to n - 1
    assert abs(means[n - 1] - u) > w(n)                                 # eliminated at n
    assert all(abs(means[k - 1] - v_r) < eps + s(k) for k in range(1, n + 1))   # Ineq. 22
    best = min(h, u + 4 * eps * L * (1 + 1 / (xi * (1 - gamma))))
    survivor = u - w(n) - eps - s(n)
    regret = n * (best - v_r) + n * (best - survivor)
    bound = eps * K * (2 + 5 * L + 4 * L / (xi * (1 - gamma))) + 2 * math.sqrt(
        2 * K * E * log_term) / (1 - gamma)
    assert regret / bound > 1.003
    assert falsify_safety.COROLLARY_F_1.ratio(instance) == pytest.approx(regret / bound, rel=1e-7)
    assert float(falsify_safety.exact_phase_ratio(instance)) == pytest.approx(regret / bound,
                                                                                rel=1e-7)


def test_corollary_f_1_is_refuted_by_the_search(tmp_path):
    result = falsify.falsify(falsify_safety.COROLLARY_F_1, BUDGET, seed=0)
    assert result.status == "refuted" and result.routes_agree
    path = falsify.save_counterexample(tmp_path, falsify_safety.COROLLARY_F_1, result)
    replayed = falsify.replay(path)
    assert replayed["refutes"] and replayed["exact_ratio"] == result.exact_ratio
    # charged as bound (1) charges it, the same instance meets the bound (with equality up to
    # the 50-digit rounding where nothing is clipped): the excess is the last episode
    charged = falsify_safety.exact_phase_ratio(result.counterexample, last_episode=False)
    assert float(charged) <= 1 + 1e-12
