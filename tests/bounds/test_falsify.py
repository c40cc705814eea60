"""The falsification engine (bounds.falsify): its two routes agree with independent
computations, it refutes Lemma C.3 as the paper states it with an exact, replayable
counterexample, it finds the corrected constants tight, and every planted error in a constant or
in the toolkit's own code turns a claim red."""

import json
from fractions import Fraction

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import falsify
from safepce.bounds.cli import main
from safepce.tabular.distance import corrected_simulation_constants

#: a small budget: the structured extremes alone reach 0.999 of the corrected constants
TEST_BUDGET = falsify.SearchBudget("test", extremes=300, hypothesis_examples=60, restarts=2,
                                   evaluations_per_restart=300)


def random_pair(seed: int, S: int = 3, A: int = 2) -> falsify.TaskPair:
    rng = np.random.default_rng(seed)
    return falsify.TaskPair(
        float(rng.uniform(0.05, 0.95)), rng.dirichlet(np.ones(S), (S, A)),
        rng.dirichlet(np.ones(S), (S, A)), rng.uniform(0, 1, (S, A)), rng.uniform(0, 1, (S, A)),
        rng.uniform(-1, 1, (S, A)), rng.uniform(-1, 1, (S, A)), rng.dirichlet(np.ones(S)),
        rng.dirichlet(np.ones(S)), rng.dirichlet(np.ones(A), S))


def value_iteration(P, r, c, rho, policy, gamma, sweeps=4000):
    """(V_r, V_c) by value iteration (a third route: no linear solve)."""
    v = np.zeros((len(rho), 2))
    signal = np.stack([np.sum(policy * r, 1), np.sum(policy * c, 1)], 1)
    P_pi = np.einsum("sa,sat->st", policy, P)
    for _ in range(sweeps):
        v = signal + gamma * P_pi @ v
    return rho @ v


@pytest.mark.parametrize("seed", range(4))
def test_exact_route_equals_value_iteration_and_the_toolkit(seed):
    pair = random_pair(seed)
    exact = falsify.exact_values(pair.P1, pair.r1, pair.c1, pair.rho1, pair.policy, pair.gamma)
    iterated = value_iteration(pair.P1, pair.r1, pair.c1, pair.rho1, pair.policy, pair.gamma)
    assert float(exact[0]) == pytest.approx(iterated[0], rel=1e-12, abs=1e-12)
    assert float(exact[1]) == pytest.approx(iterated[1], rel=1e-12, abs=1e-12)
    toolkit, rational = falsify.toolkit_gaps(pair), falsify.exact_gaps(pair)
    for name in ("reward_gap", "utility_gap", "distance"):
        assert getattr(toolkit, name) == pytest.approx(float(getattr(rational, name)),
                                                       rel=1e-10, abs=1e-13)


def test_exact_distance_by_hand():
    pair = random_pair(5, S=2, A=1)
    by_hand = max(np.max(np.abs(pair.r1 - pair.r2)), np.max(np.abs(pair.c1 - pair.c2)),
                  0.5 * np.abs(pair.rho1 - pair.rho2).sum(),
                  0.5 * np.abs(pair.P1 - pair.P2).sum(-1).max())
    assert float(falsify.exact_distance(pair)) == pytest.approx(by_hand, rel=1e-14)


def test_search_budget_is_validated_before_any_search():
    with pytest.raises(falsify.FalsifyError, match="restarts: expected an integer >= 0"):
        falsify.SearchBudget("bad", 1, 1, -1, 1)
    assert issubclass(falsify.FalsifyError, ValueError)


def test_lemma_c3_as_stated_is_refuted_by_an_exact_replayable_counterexample(tmp_path):
    result = falsify.falsify(falsify.LEMMA_C3, TEST_BUDGET, seed=0)
    assert result.status == "refuted"
    assert result.routes_agree
    # the paper's L misses the rho term: at gamma -> 0 the gap reaches ~3 L d
    assert result.worst_ratio > 2.5
    path = falsify.save_counterexample(tmp_path, falsify.LEMMA_C3, result)
    assert path == tmp_path / "counterexamples" / "lemma-c3.npz"
    description = json.loads(path.with_suffix(".json").read_text())
    assert description["status"] == "refuted"
    numerator, denominator = map(int, description["exact_ratio_fraction"].split("/"))
    assert Fraction(numerator, denominator) > 1
    replayed = falsify.replay(path)
    assert replayed["refutes"]
    # re-evaluated here a third way: value iteration and the paper's L written out
    pair = replayed["instance"]
    v1 = value_iteration(pair.P1, pair.r1, pair.c1, pair.rho1, pair.policy, pair.gamma)
    v2 = value_iteration(pair.P2, pair.r2, pair.c2, pair.rho2, pair.policy, pair.gamma)
    d = float(falsify.exact_distance(pair))
    L = 1 / (1 - pair.gamma) + 2 * pair.gamma / (1 - pair.gamma) ** 2
    assert np.max(np.abs(v1 - v2)) / (L * d) > 1 + 1e-6
    # shrunk: the smallest refuting task found has two states (one state cannot refute it)
    assert pair.shape[0] <= 2


def test_corrected_constants_survive_the_search_where_they_bind():
    result = falsify.falsify(falsify.LEMMA_C3_CORRECTED, TEST_BUDGET, seed=0)
    assert result.status == "passed"
    assert result.counterexample is None
    # tight: the search comes within 1% of the bound, so a smaller constant would be caught
    assert 0.99 < result.worst_ratio <= 1 + falsify.TOLERANCE


@pytest.mark.parametrize("factor", [2 / 3, 0.97])
def test_a_smaller_constant_fails_the_corrected_claim(monkeypatch, factor):
    """Planted bug: the corrected constants shrunk by ``factor`` (L x 2/3, and 3% only)."""
    true = corrected_simulation_constants
    monkeypatch.setattr(falsify, "corrected_simulation_constants",
                        lambda gamma: tuple(factor * x for x in true(gamma)))
    result = falsify.falsify(falsify.LEMMA_C3_CORRECTED, TEST_BUDGET, seed=0)
    assert result.status == "failed"
    assert result.worst_ratio > 1 / factor * 0.99


def test_a_wrong_total_variation_in_the_toolkit_fails_by_route_disagreement(monkeypatch):
    """Planted bug in the toolkit's route: the TV of rho without its factor 1/2."""
    true = tabular.distance

    def wrong(m1, m2, units="paper"):
        return max(true(m1, m2, units), float(np.abs(m1.rho - m2.rho).sum()))

    monkeypatch.setattr(tabular, "distance", wrong)
    result = falsify.falsify(falsify.LEMMA_C3_CORRECTED, TEST_BUDGET, seed=0)
    assert not result.routes_agree
    assert result.status == "failed"


def test_the_same_seed_gives_the_same_search():
    a = falsify.falsify(falsify.LEMMA_C3_CORRECTED, TEST_BUDGET, seed=3)
    b = falsify.falsify(falsify.LEMMA_C3_CORRECTED, TEST_BUDGET, seed=3)
    assert a.worst_ratio == b.worst_ratio
    assert a.worst_instance.describe() == b.worst_instance.describe()


def test_corrected_constants_formula():
    for gamma in (0.1, 0.5, 0.9):
        h = 1 / (1 - gamma)
        assert corrected_simulation_constants(gamma) == pytest.approx(
            (2 * h + gamma * h * h, 3 * h + 2 * gamma * h * h), rel=1e-15)
    with pytest.raises(ValueError, match="gamma"):
        corrected_simulation_constants(1.0)


def test_verify_reports_lemma_c3_refuted_and_the_planted_constant_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(falsify, "QUICK", TEST_BUDGET)
    monkeypatch.setattr("safepce.bounds.claims.falsified.QUICK", TEST_BUDGET)
    out = tmp_path / "verify"
    assert main(["verify", "--quick", "--claims", "lemma-c3", "--out", str(out), "--quiet"]) == 0
    rows = {row["claim"].split(":")[0]: row
            for row in json.loads((out / "verify.json").read_text())}
    assert set(rows) == {"Lemma C.3", "Lemma C.3 (corrected constants)"}
    stated, corrected = rows["Lemma C.3"], rows["Lemma C.3 (corrected constants)"]
    assert stated["status"] == "refuted" and stated["worst_ratio"] > 1
    assert stated["worst_instance"] == "counterexamples/lemma-c3.npz"
    assert (out / stated["worst_instance"]).exists()
    assert corrected["status"] == "passed" and 0.99 < corrected["worst_ratio"] <= 1 + 1e-9
    assert corrected["search_budget"].startswith("test:")
    header = (out / "claims.csv").read_text().splitlines()[0].split(",")
    assert {"search_budget", "worst_ratio", "worst_instance", "status"} <= set(header)
    # planted: L_r, L_c x 2/3 -> the toolkit's check fails and verify exits 1
    true = corrected_simulation_constants
    monkeypatch.setattr(falsify, "corrected_simulation_constants",
                        lambda gamma: tuple(2 / 3 * x for x in true(gamma)))
    planted = tmp_path / "planted"
    assert main(["verify", "--quick", "--claims", "lemma-c3", "--out", str(planted),
                 "--quiet"]) == 1
    statuses = {row["claim"].split(":")[0]: row["status"]
                for row in json.loads((planted / "verify.json").read_text())}
    assert statuses["Lemma C.3 (corrected constants)"] == "failed"


# --- Eq. 6 -------------------------------------------------------------------------------------


def test_eq_6_survives_the_search_including_the_premise_boundary():
    """The closed form agrees with App. D's recursion everywhere the search goes; the exact
    route (both restated in rational arithmetic) gives 0: the identity itself holds."""
    result = falsify.falsify(falsify.EQ_6, TEST_BUDGET, seed=0)
    assert result.status == "passed" and result.routes_agree
    assert result.exact_ratio == 0
    assert result.worst_ratio < 0.01              # closed form and recursion within 1e-11
    # the boundary v_s -> kappa, where the literal form lost its digits, is in the space
    L = 1 / (1 - 0.99) + 2 * 0.99 / (1 - 0.99) ** 2
    kappa = (4 * L + 9) * 1.25e-3
    boundary = falsify.WeightInstance(float(np.nextafter(np.nextafter(kappa, 200), 200)),
                                      1.25e-3, 0.99, 120)
    assert falsify.EQ_6.premise(boundary)
    assert falsify.EQ_6.ratio(boundary) < 0.01


def test_the_literal_closed_form_fails_at_the_premise_boundary(monkeypatch):
    """Planted: Eq. 6 evaluated literally, (v_s - kappa) alpha_1 / (v_s alpha_1 + (v_s - kappa
    - v_s alpha_1) C^m): the search finds where it loses its digits."""
    def literal(v_s, eps, L, gamma, n_stages):
        kappa = (4 * L + 9) * eps
        margin = v_s - 2 * eps * (L + 2)
        alpha_1 = margin / (margin + 2 / (1 - gamma))
        C = (2 * v_s + kappa) / (3 * v_s)
        m = np.arange(n_stages)
        alpha = np.zeros(n_stages + 1)
        alpha[1:] = (v_s - kappa) * alpha_1 / (v_s * alpha_1 + (v_s - kappa - v_s * alpha_1)
                                               * C**m)
        return alpha

    monkeypatch.setattr(falsify, "mixture_weights", literal)
    result = falsify.falsify(falsify.EQ_6, falsify.QUICK, seed=0)
    assert result.status == "failed" and not result.routes_agree


def test_an_off_by_one_in_the_closed_form_fails_eq_6(monkeypatch):
    """Planted: Eq. 28's exponent (C^(m+1) where Eq. 6 has C^m)."""
    def off_by_one(v_s, eps, L, gamma, n_stages):
        alpha = np.zeros(n_stages + 1)
        kappa = (4 * L + 9) * eps
        margin = v_s - 2 * eps * (L + 2)
        alpha_1 = margin / (margin + 2 / (1 - gamma))
        C = (2 * v_s + kappa) / (3 * v_s)
        m = np.arange(1, n_stages + 1)
        alpha[1:] = (v_s - kappa) * alpha_1 / (v_s * alpha_1 + (v_s - kappa - v_s * alpha_1)
                                               * C**m)
        return alpha

    monkeypatch.setattr(falsify, "mixture_weights", off_by_one)
    result = falsify.falsify(falsify.EQ_6, TEST_BUDGET, seed=0)
    assert result.status == "failed"
    assert result.worst_ratio > 1e6               # weights off by > 1e-3


def test_eq_6_counterexample_files_round_trip(tmp_path):
    instance = falsify._weight_instance(0.3, 1e-4, 0.5)
    instance.save(tmp_path / "eq-6.npz")
    again = falsify.WeightInstance.load(tmp_path / "eq-6.npz")
    assert again == instance
    replayed = falsify.replay(tmp_path / "eq-6.npz")
    assert replayed["exact_ratio"] == 0 and not replayed["refutes"]


def test_lemma_3_5_claim_keeps_its_premise():
    """Lemma 3.5's items 1-2 are searched only where (8L + 18) eps <= xi holds and the pair's
    policy is optimal on the cover task: the erratum's two-state pair at d = 1e-3 (1-gamma)
    qualifies (and refutes, ratio (3-gamma)/(1+gamma)); the same pair at d = 0.2 breaks the
    premise; a pair whose policy is not optimal on M1 is out."""
    from safepce.bounds import erratum
    from safepce.bounds.falsify import LEMMA_3_5, lemma_3_5_setting

    near = erratum.lemma_c3_counterexample(0.5, 5e-4)
    assert LEMMA_3_5.premise(near) and LEMMA_3_5.ratio(near) > 1.6
    assert not lemma_3_5_setting(erratum.lemma_c3_counterexample(0.5, 0.2))
    two_actions = falsify.TaskPair(
        0.5, np.tile(np.eye(2)[:, None, :], (1, 2, 1)), np.tile(np.eye(2)[:, None, :], (1, 2, 1)),
        np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 0.0]]),
        np.ones((2, 2)), np.ones((2, 2)), np.array([1.0, 0.0]), np.array([1.0, 0.0]),
        np.array([[0.0, 1.0], [1.0, 0.0]]))            # takes the reward-0 action: not optimal
    assert not lemma_3_5_setting(two_actions)
