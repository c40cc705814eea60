"""The erratum (bounds.erratum): one test per finding, each failing when the finding stops being
true; where possible the numbers are recomputed here another way (value iteration instead of
the LP, the recursion by hand, a mixture evaluated directly)."""

import dataclasses
import math

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import erratum
from safepce.tabular.distance import simulation_lemma_constant

BY_NAME = {f.name: f for f in erratum.FINDINGS}


def measure(name):
    return BY_NAME[name].measure(True)


def _minimum_cost_by_value_iteration(noise: float) -> float:
    """Smallest discounted cost by value iteration on the cost alone (not the LP)."""
    task = tabular.gridworld(noise)
    v = np.zeros(task.n_states)
    for _ in range(400):                                   # 0.9^400 ~ 5e-19
        v = np.min(task.cost + task.gamma * task.P @ v, axis=1)
    return float(task.rho @ v)


def test_every_finding_names_its_own_test():
    assert len(erratum.FINDINGS) >= 12
    for finding in erratum.FINDINGS:
        assert finding.test == f"tests/bounds/test_erratum.py::test_" \
                               f"{finding.name.replace('-', '_').replace('.', '_')}"
        assert f"def test_{finding.name.replace('-', '_').replace('.', '_')}(" in open(
            __file__).read()


def test_tuned_constants_published():
    result = measure("tuned-constants-published")
    assert result["holds"] and result["violating_runs"] >= 1
    # the worst deployed mixture, re-evaluated as a Mixture on its task (not by the harness)
    runs = erratum.published_runs("safe-pce")
    training, _ = erratum._experiment()
    worst = max(range(10), key=lambda i: runs[i].cost_value.max())
    stage = [e for e in runs[worst].log["events"] if e["event"] in ("select", "stage")]
    task = tabular.gridworld(erratum.PAPER_TEST_TASKS[worst])
    costs = []
    candidate = None
    for event in stage:
        candidate = event["candidate"]
        alpha = event.get("alpha", 0.0)
        mixture = tabular.Mixture.of([training.policies[candidate], training.safe_policy],
                                     [alpha, 1 - alpha])
        costs.append(tabular.evaluate(task, mixture).cost_value)
    assert max(costs) == pytest.approx(result["max_cost"], abs=1e-9)
    assert max(costs) > 1.5
    # the row's numbers: one cost per violating run, sorted; three of the four within 2.5% of b
    violating = result["violating_costs"]
    assert len(violating) == result["violating_runs"] and violating == sorted(violating)
    assert min(violating) > 1.5 and sum(c <= 1.5 * 1.025 for c in violating) == 3
    assert "cannot be read from their figure" in result["measured"]


def test_tuned_constants_over_d():
    result = measure("tuned-constants-over-d")
    assert result["holds"] and result["violating_runs"] / result["runs"] > 0.2


def test_plotting_monitor():
    result = measure("plotting-monitor")
    assert result["holds"] and result["drawn_max_cost"] <= 1.5 < measure(
        "tuned-constants-published")["max_cost"]


def test_eq_28_off_by_one():
    """The App. D recursion by hand; Eq. 6's closed form (the toolkit's) equals it, Eq. 28's
    does not."""
    from safepce.theory.algorithms.safe_pce import mixture_weights

    v_s, eps, gamma = 0.5, 1e-4, 0.5
    L = simulation_lemma_constant(gamma)
    kappa = (4 * L + 9) * eps
    alpha = [(v_s - 2 * eps * (L + 2)) / (v_s - 2 * eps * (L + 2) + 2 / (1 - gamma))]
    for _ in range(5):
        alpha.append(alpha[-1] * 3 * v_s / ((2 + alpha[-1]) * v_s + kappa))
    np.testing.assert_allclose(mixture_weights(v_s, eps, L, gamma, 6)[1:], alpha, rtol=1e-12)
    eq_28 = [erratum._eq_28(v_s, eps, L, gamma, m) for m in range(1, 7)]
    assert not np.allclose(eq_28, alpha, rtol=1e-3)
    assert measure("eq-28-off-by-one")["holds"]


def test_main_text_c_l():
    gamma = 0.9
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    assert 2 / 3 + (4 * L + 9) / (3 / (1 - gamma)) > 1        # at the largest v_s
    assert measure("main-text-c-l")["holds"]


def test_subroutine_3_arguments():
    result = measure("subroutine-3-arguments")
    assert result["holds"] and result["appendix"] <= 12 and result["main text"] > 0.8 * result["n"]


def test_safe_policy_noise_0_5():
    result = measure("safe-policy-noise-0.5")
    assert result["holds"]
    assert _minimum_cost_by_value_iteration(0.5) == pytest.approx(result["minimum_cost"],
                                                                    abs=1e-6)


def test_assumption_3_3_top_of_support():
    result = measure("assumption-3.3-top-of-support")
    assert result["holds"] and 0.42 < result["threshold"] < 0.45
    assert _minimum_cost_by_value_iteration(result["threshold"] - 0.005) < 1.5
    assert _minimum_cost_by_value_iteration(result["threshold"] + 0.005) > 1.5
    # D: Normal(0.3, 0.03) clipped to [0, 0.5]: the mass above the threshold, by erfc
    mass = 0.5 * math.erfc((result["threshold"] - 0.3) / (0.03 * math.sqrt(2)))
    assert result["mass"] == pytest.approx(mass, rel=1e-6)


def test_sample_schedule():
    from safepce.theory.training import initial_sample_size

    assert initial_sample_size(0.05) == math.ceil(math.log(0.05) ** 2 / 0.05**2) == 3590
    result = measure("sample-schedule")
    assert result["holds"] and result["code_N"] == 1198
    # round 4 by hand: the rule counts 2^3 N_f = 9584 tasks while 4 N_f = 4792 are held
    assert "N = 9584 while holding 4792" in result["measured"] and "stops earlier" in result[
        "measured"]


def test_vacuous_theory_constants():
    result = measure("vacuous-theory-constants")
    assert result["holds"] and result["eps_cover"] > result["eps_needed"]
    # recomputed: the premise with xi = the largest slack of pi_s on the cover (paper units)
    low, high = result["slack_range"]
    L = 1 / (1 - 0.9) + 2 * 0.9 / (1 - 0.9) ** 2
    assert result["eps_needed"] == pytest.approx(high / (8 * L + 18))
    assert 0 < low <= high < 1 and result["eps_cover"] / result["eps_needed"] > 50


def test_vacuous_theory_constants_rule_uses_the_slack(monkeypatch):
    """The rule: with a cover radius below what the premise needs the finding must not hold."""
    training, distribution = erratum._experiment()
    monkeypatch.setattr(type(training), "cover_radius", lambda self, family: 1e-6)
    assert not measure("vacuous-theory-constants")["holds"]


def test_pce_absolute_regret():
    result = measure("pce-absolute-regret")
    assert result["holds"] and result["absolute"] > 10_000 > 1_000 > result["positive_part"]


def test_dope_plus_reward_cap():
    result = measure("dope-plus-reward-cap")
    assert result["holds"] and result["capped_fraction"] == 1.0
    # the goal's raw reward (10) exceeds the cap 1 + sqrt(5e-4) whatever its bonus
    assert result["goal_capped_by_construction"] == 1.0
    # the most visited pair (the goal's) by hand: its bonus alone exceeds the cap's headroom
    n, L, S, A, gamma = result["max_count"], 1e-4, 49, 4, 0.9
    e = math.sqrt(4 * L * S / (n - 1)) + 14 * L * S / (3 * (n - 1))
    c = 8 * e / math.sqrt(1 - gamma) + 2 * L * math.sqrt(40_000 / ((1 - gamma) * A)) / (n - 1)
    assert c / (0.1 * (1 - gamma)) > math.sqrt(5e-4)


def test_safe_meta_rl_start():
    result = measure("safe-meta-rl-start")
    assert result["holds"]
    assert result["violating_pi_s"] == 0 and result["regret_smoothed"] > result["regret_pi_s"]
    # the start-only preset differs from the authors' in the start alone
    from safepce.theory.algorithms.safe_meta_rl import (
        SAFE_META_RL_EXPERIMENT,
        SAFE_META_RL_SMOOTHED_START,
    )

    differ = {f.name for f in dataclasses.fields(SAFE_META_RL_EXPERIMENT)
              if getattr(SAFE_META_RL_EXPERIMENT, f.name) != getattr(SAFE_META_RL_SMOOTHED_START,
                                                                     f.name)}
    assert differ == {"name", "start"} and result["eta"] == pytest.approx(0.04)


def test_pooled_gate():
    result = measure("pooled-gate")
    assert result["holds"]
    # the two gates' violation rates over D are not distinguishable (overlapping 95% intervals)
    assert result["intervals_overlap"] and "no significant difference" in result["measured"]


def test_measure_findings_rows():
    rows = erratum.measure_findings(quick=True)
    assert len(rows) == len(erratum.FINDINGS) + len(erratum.EXTERNAL_FINDINGS)
    assert all(row["holds"] for row in rows)
    assert {"name", "where", "statement", "holds", "measured", "test", "command"} <= set(rows[0])


def _two_state_values(pair):
    """(V_r, V_c) of the counterexample's tasks by a dense solve written here (one action)."""
    values = []
    for P, r, c, rho in ((pair.P1, pair.r1, pair.c1, pair.rho1),
                         (pair.P2, pair.r2, pair.c2, pair.rho2)):
        system = np.eye(2) - pair.gamma * P[:, 0, :]
        values.append(rho @ np.linalg.solve(system, np.stack([r[:, 0], c[:, 0]], 1)))
    return values


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_lemma_c3_initial_distribution(gamma):
    result = measure("lemma-c3-initial-distribution")
    assert result["holds"]
    # recomputed here: a dense solve and the paper's L written out, at d = 1e-3 (1 - gamma)
    d = 1e-3 * (1 - gamma)
    pair = erratum.lemma_c3_counterexample(gamma, d)
    (_, c1), (_, c2) = _two_state_values(pair)
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    ratio = abs(c1 - c2) / (L * d)
    assert ratio > 1
    assert ratio == pytest.approx(result["utility_ratios"][gamma], rel=1e-6)
    # first order in d the gap is (3/(1-gamma) + 2 gamma/(1-gamma)^2) d
    assert ratio == pytest.approx((3 - gamma) / (1 + gamma), rel=2e-3)
    # and the corrected utility constant L_c holds on it
    L_c = 3 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    assert abs(c1 - c2) <= L_c * d
    # Lemma 3.5's premise holds on the pair, recomputed: xi = V_c of the one policy on M2 (the
    # smaller), (8L + 18) d <= xi; so its items 1-2 are refuted by the same numbers
    assert result["lemma_3_5_premise"][gamma]
    assert (8 * L + 18) * d <= min(c1, c2)


def test_lemma_c3_initial_distribution_rule_compares_with_the_papers_constant(monkeypatch):
    """The finding's rule: it must stop holding if the constant were the corrected one."""
    monkeypatch.setattr(erratum, "simulation_lemma_constant",
                        lambda gamma: 3 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2)
    assert not measure("lemma-c3-initial-distribution")["holds"]


def test_lemma_c2_sampled_centres():
    result = measure("lemma-c2-sampled-centres")
    assert result["holds"]
    assert result["cover_sizes"] == {4: 14, 6: 52}
    # recomputed here without the toolkit's greedy: D's samples, each vertex its own ball
    from safepce.bounds.falsify_cover import box_family
    from safepce.theory.training import initial_sample_size

    family, _ = box_family(4)
    n = initial_sample_size(0.05)
    counts = sorted(np.bincount(family.sample(n, seed=0).astype(int)[:, 0], minlength=16),
                    reverse=True)
    uncovered, size = n, 0
    while uncovered > 3 * 0.05 * n:
        uncovered -= counts[size]
        size += 1
    assert size == 14 > 2 * math.log(20)


def test_lemma_c2_sampled_centres_rule_compares_with_the_bound(monkeypatch):
    """The finding's rule: with C_{eps/2} = 16 in place of C_eps = 1 it must stop holding."""
    from safepce.bounds import falsify_cover

    monkeypatch.setattr(falsify_cover, "covering_number_with_centre", lambda k: 2**k)
    assert not measure("lemma-c2-sampled-centres")["holds"]


def test_eq_30_stage_index():
    result = measure("eq-30-stage-index")
    assert result["holds"]
    assert result["refuting_fraction"] == 1.0 and 1.05 < result["worst_ratio"] < 1.5
    # recomputed here in floats: App. D's recursion from Eq. 6's alpha_1, Eq. 30's A_l
    gamma, eps, v = 0.1, 1e-4, result["v_s"]
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    kappa = (4 * L + 9) * eps
    m = math.ceil(math.log(eps) / math.log((2 * v + kappa) / (3 * v)))
    assert m == result["stage"]
    margin = v - 2 * eps * (L + 2)
    alpha = [0.0, margin / (margin + 2 / (1 - gamma))]
    while len(alpha) <= m + 1:
        alpha.append(alpha[-1] * 3 * v / ((2 + alpha[-1]) * v + kappa))
    A = ((4 * L + 9 - v) * alpha[1] + v - kappa) / (v * alpha[1] + (v - kappa - v * alpha[1]) * eps)
    assert (1 - alpha[m]) / (A * eps) == pytest.approx(result["worst_ratio"], rel=1e-9)
    assert (1 - alpha[m + 1]) / (A * eps) == pytest.approx(result["ratio_one_stage_later"],
                                                           rel=1e-9)


def test_eq_30_stage_index_rule_compares_at_the_algorithms_stage(monkeypatch):
    """The finding's rule: evaluated one stage later (Eq. 28's indexing) it must stop holding."""
    from safepce.bounds import falsify_safety

    original = falsify_safety.exact_eq_30
    monkeypatch.setattr(falsify_safety, "exact_eq_30",
                        lambda instance, later=0: original(instance, later + 1))
    assert not measure("eq-30-stage-index")["holds"]


def test_corollary_f1_last_episode():
    result = measure("corollary-f1-last-episode")
    assert result["holds"]
    assert 1.003 < result["ratio"] < 1.01 and result["ratio_as_charged"] <= 1
    # the bound (1) of App. F p. 26 written out here, against the claim's route
    from safepce.bounds.upper import corollary_f_1_explicit

    case = erratum.COROLLARY_F_1_CASE
    gamma, eps, xi, K = case["gamma"], case["eps"], case["xi"], 134
    L = simulation_lemma_constant(gamma)
    expected = eps * K * (2 + 5 * L + 4 * L / (xi * (1 - gamma))) + 2 * math.sqrt(
        2 * K * 2 * math.log(4 * K / 0.2)) / (1 - gamma)
    assert corollary_f_1_explicit(K, 0.2, eps, xi, gamma, 2)["reward_regret"] == pytest.approx(
        expected, rel=1e-12)


def test_corollary_f1_last_episode_rule_counts_the_last_episode(monkeypatch):
    """The finding's rule: charging the eliminated phase at its full length it must stop
    holding."""
    from safepce.bounds import falsify_safety

    original = falsify_safety.exact_phase_ratio
    monkeypatch.setattr(falsify_safety, "exact_phase_ratio",
                        lambda instance, last_episode=True: original(instance, False))
    assert not measure("corollary-f1-last-episode")["holds"]


def test_app_e_stage_count():
    """By hand at gamma 0.5 (L = 6), eps 1e-3, v_s 0.1: C_l = (0.2 + 33e-3)/0.3, App. E's base
    (0.2 + 29e-3)/0.3; log_C eps = 27.3 > ceil(log_b eps) = 26."""
    result = measure("app-e-stage-count")
    assert result["holds"] and 0 < result["fraction"] <= 1
    eps, v = 1e-3, 0.1
    C = (2 * v + 33 * eps) / (3 * v)
    b = (2 * v + 29 * eps) / (3 * v)
    assert math.log(eps) / math.log(C) == pytest.approx(27.34, abs=0.01)
    assert math.ceil(math.log(eps) / math.log(b)) == 26
    v_s, m_l, bound = result["example"]
    assert m_l > bound


def test_app_e_stage_count_rule(monkeypatch):
    """The rule compares with App. E's (4L+5): with (4L+9) there, as in C_l, the bound would be
    ceil(log_C eps) >= m(l) and the finding must not hold."""
    monkeypatch.setattr(erratum, "APP_E_OFFSET", 9)
    assert not measure("app-e-stage-count")["holds"]


def test_assumption_3_3_safe_policy():
    """Recomputed: pi_s's discounted cost at noise 0.4 is the budget 1.5 (to round-off) and
    above it at 0.41; D's mass above 0.4 from the truncated normal N(0.3, 0.03^2) on [0, 0.5]."""
    result = measure("assumption-3.3-safe-policy")
    assert result["holds"]
    training, _ = erratum._experiment()
    at = {n: tabular.evaluate(tabular.gridworld(n), training.safe_policy).cost_value
          for n in (0.4, 0.41)}
    assert at[0.4] == pytest.approx(1.5, abs=1e-9) and at[0.41] > 1.5
    from scipy import stats

    truncated = stats.truncnorm((0 - 0.3) / 0.03, (0.5 - 0.3) / 0.03, loc=0.3, scale=0.03)
    assert result["mass_above"] == pytest.approx(truncated.sf(0.4), rel=1e-6)
    assert 4e-4 < result["mass_above"] < 4.6e-4


def test_app_c2_iteration_count():
    """By hand at C = 10, delta 0.05: N1 = ln^2(0.05)/0.05^2 = 3590, N0 = 40 ln^2(200)/0.05^2;
    3590 x 2^7 >= N0 > 3590 x 2^6, so 8 rounds, where ln(2 N0/N1) = 5.5."""
    result = measure("app-c2-iteration-count")
    assert result["holds"] and result["final_bound_holds"]
    n1 = math.log(0.05) ** 2 / 0.05**2
    n0 = 40 * math.log(200) ** 2 / 0.05**2
    assert n1 * 2**6 < n0 <= n1 * 2**7
    needed, stated, _ = result["rows"][10]
    assert needed == 8 and stated == pytest.approx(math.log(2 * n0 / n1)) and 5.4 < stated < 5.6


def test_readme_erratum_rows_follow_the_findings():
    """The erratum page's table (docs/erratum.md) lists the erratum's findings in order, each
    with its statement and location as bounds/erratum.py states them; the repository notes
    follow in their own table."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "erratum.md").read_text()
    erratum_part = page[:page.index("Notes on the authors'")]
    notes_part = page[page.index("Notes on the authors'"):]
    for part, section in ((erratum_part, "erratum"), (notes_part, "repository note")):
        rows = re.findall(r"\| \d+ \| \*\*([a-z0-9.\-]+)\*\* \((.*?)\): (.*?) \| ", part)
        findings = [f for f in erratum.FINDINGS if f.section == section]
        assert [r[0] for r in rows] == [f.name for f in findings]
        for (name, where, statement), finding in zip(rows, findings, strict=True):
            assert where == finding.where and statement == finding.statement, name


def test_table_1_covering_radius():
    """The covering numbers recomputed from the truncated normal itself: for this symmetric
    unimodal D the best m intervals of length 2 r sit on the central (1 - delta) interval, so
    C = ceil(width / (2 r)) with r in noise units (task distance / 0.75); C_eps is tiny while C
    at xi eps (1-gamma)^3 exceeds |S|^2 |A| = 9,604 for the smaller xi."""
    from scipy import stats

    result = measure("table-1-covering-radius")
    assert result["holds"] and result["dope"] == 9604
    truncated = stats.truncnorm((0 - 0.3) / 0.03, (0.5 - 0.3) / 0.03, loc=0.3, scale=0.03)
    width = truncated.ppf(0.975) - truncated.ppf(0.025)
    for (xi, eps), (count, _) in result["rows"].items():
        r = xi * eps * 0.1**3 / 0.75
        # xi is rounded to 4 digits in the row key: agreement to 0.1%
        assert count == pytest.approx(math.ceil(width / (2 * r)), rel=1e-3), (xi, eps)
    assert max(c for c, _ in result["rows"].values()) > 9604


def test_noise_model():
    """The text's kernel by hand at the corner state 0 (x = 0, y = 0), action up: with noise
    0.4 the intended cell above gets 0.6 + 0.1, the right neighbour 0.1, and the two off-grid
    actions (down, left) keep the agent in place (0.2); the thresholds by bisection."""
    result = measure("noise-model")
    assert result["holds"]
    P = tabular.gridworld_kernel(0.4, "text")
    up = [a for a, (dx, dy) in enumerate(tabular.families.ACTION_DELTAS) if (dx, dy) == (0, 1)][0]
    row = P[0, up]
    assert row[7] == pytest.approx(0.7) and row[1] == pytest.approx(0.1)
    assert row[0] == pytest.approx(0.2) and row.sum() == pytest.approx(1.0)
    assert result["thresholds"]["code"] == pytest.approx(0.4359, abs=1e-4)
    assert result["thresholds"]["text"] == pytest.approx(0.4643, abs=1e-4)
    assert tabular.minimum_cost(tabular.gridworld(0.45, noise_model="text")) <= 1.5
    assert tabular.minimum_cost(tabular.gridworld(0.45)) > 1.5


def test_noise_model_rule(monkeypatch):
    """The rule compares two different models: one model twice must not hold."""
    monkeypatch.setattr(erratum, "NOISE_MODEL_PAIR", ("code", "code"))
    assert not measure("noise-model")["holds"]


# --- the rules of the findings that compare with a threshold: each must stop holding when the
# --- quantity it compares is moved to the other side (so a one-sided or inverted rule shows)


def test_safe_policy_noise_0_5_rule(monkeypatch):
    """With a budget above the noise-0.5 task's smallest cost (2.0042) the finding fails."""
    monkeypatch.setattr(erratum, "BUDGET", 2.1)
    assert not measure("safe-policy-noise-0.5")["holds"]


def test_assumption_3_3_top_of_support_rule(monkeypatch):
    """If every noise in D's support had a feasible policy the finding fails."""
    monkeypatch.setattr(erratum, "_minimum_cost", lambda noise: 0.9 + noise)
    assert not measure("assumption-3.3-top-of-support")["holds"]


def test_eq_28_off_by_one_rule(monkeypatch):
    """With Eq. 28 written with C_l^(m-1), as the recursion needs, the finding fails."""
    def fixed(v_s, eps, L, gamma, m):
        return float(erratum.mixture_weights(v_s, eps, L, gamma, m)[m])

    monkeypatch.setattr(erratum, "_eq_28", fixed)
    assert not measure("eq-28-off-by-one")["holds"]


def test_app_c2_iteration_count_rule(monkeypatch):
    """Were the count 1 + ceil(log2(N0/N1)), as doubling needs, the finding fails."""
    monkeypatch.setattr(erratum, "APP_C2_LOG", lambda x: 1 + math.ceil(math.log2(x / 2)))
    assert not measure("app-c2-iteration-count")["holds"]


def test_main_text_c_l_rule(monkeypatch):
    """At a small L the main text's C_l drops below 1 at the largest v_s: the finding fails."""
    monkeypatch.setattr(erratum, "simulation_lemma_constant", lambda gamma: 0.01)
    assert not measure("main-text-c-l")["holds"]


def test_sample_schedule_rule(monkeypatch):
    """Were Algorithm 1's first N the code's ln(1/delta)/delta^2, the finding fails."""
    monkeypatch.setattr(erratum, "initial_sample_size",
                        lambda delta: int(math.log(1 / delta) / delta**2))
    assert not measure("sample-schedule")["holds"]


def test_subroutine_3_arguments_rule(monkeypatch):
    """With a stopping statistic at or below delta, Algorithm 1 could stop: the finding fails."""
    monkeypatch.setattr(erratum, "stopping_statistic", lambda size, n, delta: delta)
    assert not measure("subroutine-3-arguments")["holds"]


# --- the rules of the findings measured on runs: each must stop holding when the runs stop
# --- showing what the finding states (runs edited, never re-run)


def _capped(records):
    """The same runs with every deployed cost moved to the budget (no run violates)."""
    return tuple(dataclasses.replace(r, cost_value=np.minimum(r.cost_value, r.budget))
                 for r in records)


def _runs_without(key_to_cap):
    real = erratum.published_runs

    def runs(key, n_tasks=10):
        records = real(key, n_tasks)
        return _capped(records) if key == key_to_cap else records
    return runs


def test_every_finding_has_a_rule_test():
    source = open(__file__).read()
    for finding in erratum.FINDINGS:
        assert f"def test_{finding.name.replace('-', '_').replace('.', '_')}_rule" in source, \
            finding.name


def test_tuned_constants_published_rule(monkeypatch):
    """If no run of Safe-PCE deployed a cost above b, the finding fails."""
    monkeypatch.setattr(erratum, "published_runs", _runs_without("safe-pce"))
    assert not measure("tuned-constants-published")["holds"]


def test_tuned_constants_over_d_rule(monkeypatch):
    """The rule needs the rate's lower 95% bound above 10%: 15 violating runs of 200 (7.5%,
    bound 4.3%) must not hold, 40 of 200 (bound 14.7%) must."""
    for k, expected in ((15, False), (40, True)):
        runs = tuple((i < k, True) for i in range(200))
        monkeypatch.setattr(erratum, "runs_over_d", lambda key, n, runs=runs: runs)
        assert measure("tuned-constants-over-d")["holds"] is expected, k


def test_plotting_monitor_rule(monkeypatch):
    """Had the authors' loop stored the violating episodes, the finding fails."""
    monkeypatch.setattr(erratum, "authors_report", lambda record: record)
    assert not measure("plotting-monitor")["holds"]


def test_assumption_3_3_safe_policy_rule(monkeypatch):
    """If D put no mass above noise 0.4 (pi_s feasible on D's support), the finding fails."""
    training, distribution = erratum._experiment()

    class NoTail:
        def cdf(self, x):
            return 1.0

    monkeypatch.setattr(erratum, "_experiment", lambda: (training, NoTail()))
    assert not measure("assumption-3.3-safe-policy")["holds"]


def test_pce_absolute_regret_rule(monkeypatch):
    """If PCE never earned more than V* (|V* - V_r| = [V* - V_r]_+), the finding fails."""
    real = erratum.published_runs

    def runs(key, n_tasks=10):
        return tuple(dataclasses.replace(r, reward_value=np.minimum(r.reward_value,
                                                                    r.optimal_value))
                     for r in real(key, n_tasks))
    monkeypatch.setattr(erratum, "published_runs", runs)
    assert not measure("pce-absolute-regret")["holds"]


def test_dope_plus_reward_cap_rule(monkeypatch):
    """With bonuses that leave pairs below the cap (only the goal's raw reward reaches it), the
    finding fails."""
    def small_bonus(counts, reward, log_term, gamma, n_episodes):
        return np.minimum(reward + 1e-3, 1 + math.sqrt(5e-4))
    monkeypatch.setattr(erratum, "dope_plus_optimistic_reward", small_bonus)
    assert not measure("dope-plus-reward-cap")["holds"]


def test_safe_meta_rl_start_rule(monkeypatch):
    """If the start-only preset's runs did not violate, the finding fails; likewise if the
    authors' start (pi_s) did."""
    monkeypatch.setattr(erratum, "published_runs", _runs_without("safe-meta-rl-smoothed-start"))
    assert not measure("safe-meta-rl-start")["holds"]
    monkeypatch.undo()
    smoothed = erratum.published_runs("safe-meta-rl-smoothed-start", 3)
    monkeypatch.setattr(erratum, "published_runs", lambda key, n_tasks=10: smoothed)
    assert not measure("safe-meta-rl-start")["holds"]


def test_table_1_covering_radius_rule(monkeypatch):
    """If the covering number at Corollary 4.3's radius were below |S|^2 |A|, it fails."""
    from safepce.bounds import covering

    monkeypatch.setattr(covering, "covering_number", lambda *args: 9_000)
    assert not measure("table-1-covering-radius")["holds"]


def test_pooled_gate_rule(monkeypatch):
    """If the pooled gate left every run's events unchanged, the finding fails."""
    real = erratum.published_runs
    monkeypatch.setattr(erratum, "published_runs",
                        lambda key, n_tasks=10: real("safe-pce", n_tasks))
    assert not measure("pooled-gate")["holds"]
