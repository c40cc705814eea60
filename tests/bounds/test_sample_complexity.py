"""Sample-complexity measures on hand-made records, and `safepce verify --quick`."""

import json

import numpy as np
import pandas
import pytest

from safepce.bounds.cli import main
from safepce.bounds.sample_complexity import (
    episodes_to_accuracy,
    fitted_slope,
    regret_rate_episodes,
    violation_rate,
)
from safepce.theory.harness import RunRecord
from safepce.theory.results import load


def _record(rewards, costs, optimum=1.0, budget=1.0):
    rewards, costs = np.asarray(rewards, float), np.asarray(costs, float)
    return RunRecord("x", "", optimum, budget, rewards, costs, np.zeros(rewards.size, bool), 10,
                     0, 0.0)


def test_output_policy_accuracy_by_hand():
    # deployed values 0, 1, 1, 1, ...: pi_out(k) has value (k-1)/k; within 0.25 from k = 4 on
    record = _record([0.0] + [1.0] * 9, [0.5] * 10)
    assert episodes_to_accuracy(record, 0.25) == 4
    assert regret_rate_episodes(record, 0.25) == 4
    assert episodes_to_accuracy(record, 0.01) is None
    # an infeasible first policy keeps pi_out infeasible while the running mean cost > budget
    record = _record([1.0] * 10, [3.0] + [0.5] * 9)
    assert episodes_to_accuracy(record, 0.1) == 5        # (3 + 0.5 (k-1)) / k <= 1 from k = 5


def test_violation_rate_interval_and_slope():
    rate = violation_rate(0, 10_000)
    assert rate["low"] == 0.0 and rate["high"] == pytest.approx(1 - 0.025 ** (1 / 10_000))
    assert fitted_slope([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="^runs"):
        violation_rate(3, 2)


def test_verify_quick_writes_every_claim(tmp_path, capsys):
    assert main(["verify", "--quick", "--out", str(tmp_path), "--quiet"]) == 0
    claims = json.loads((tmp_path / "verify.json").read_text())
    by_name = {c["claim"].split(":")[0]: c for c in claims}
    for label in ("Lemma C.3 (corrected constants)", "Lemma 4.5", "Theorem 4.2", "Eq. 6"):
        assert by_name[label]["status"] == "passed" and by_name[label]["worst_margin"] >= 0
    # Lemma C.3 as the paper states it: refuted by the search, with a saved counterexample
    stated = by_name["Lemma C.3"]
    assert stated["status"] == "refuted" and stated["worst_ratio"] > 2
    assert (tmp_path / stated["worst_instance"]).exists()
    assert all({"search_budget", "worst_ratio", "worst_instance"} <= set(c) for c in claims)
    assert all(set(c) >= {"claim", "passed", "runs", "worst_margin", "status"} for c in claims)
    slopes = [c for c in claims if c["claim"].startswith("slope")]
    assert len(slopes) == 7 and all(c["passed"] for c in slopes)
    # the paper's zero-violation statement for its tuned constants is refuted, not "failed"
    assert by_name["Section 6"]["status"] == "refuted"
    # the sandwich: one claim per parameter, >= 3 cells of >= 30 runs, eliminations happen
    sandwich = [c for c in claims if c["claim"].startswith("sandwich")]
    assert len(sandwich) == 3 and {c["status"] for c in sandwich} <= {"passed", "inconclusive"}
    rows = pandas.read_csv(tmp_path / "sandwich.csv")
    assert rows.groupby("parameter").size().min() >= 3 and rows["runs"].min() >= 30
    assert rows["mean_eliminations"].mean() > 0 and rows["violating_runs"].sum() == 0
    assert (rows["lower_bound"] < rows["budget_transitions"]).all()
    for name in ("regret_envelope", "lower_bound_slopes", "scaled_sweep", "sandwich"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1_000
    assert "passed" in capsys.readouterr().out
    # certified Safe-PCE: no violating run on either family
    certified = [c for c in claims if c["claim"].startswith("certified")]
    assert len(certified) == 2 and all(c["status"] == "passed" for c in certified)
    # the erratum: every finding measured again, all still true, in findings.csv
    findings = pandas.read_csv(tmp_path / "findings.csv")
    assert len(findings) >= 13 and findings["holds"].all()
    errata = [c for c in claims if c["claim"].startswith("erratum")]
    assert len(errata) >= 12 and all(c["status"] == "passed" for c in errata)
    # the shared summary schema: one flat record per claim
    loaded = load(tmp_path)
    assert loaded.command == "verify"
    assert pandas.DataFrame(loaded.summary["results"])["claim"].tolist() == [
        c["claim"] for c in claims]


def test_verify_runs_the_claim_table_in_order(tmp_path):
    """verify iterates the table it is given: a new claim is one row."""
    from safepce.bounds.verify import CLAIMS, ClaimCheck, claim_eq_6, claim_lemma_c3, run_verify

    assert [c.name for c in CLAIMS][:2] == ["lemma-c3", "eq-6"]
    table = (ClaimCheck("eq-6", "Eq. 6", claim_eq_6),
             ClaimCheck("lemma-c3", "Lemma C.3", claim_lemma_c3))
    claims, figures = run_verify(tmp_path, quick=True, workers=1, progress=False, claims=table)
    assert [c.claim.split(":")[0] for c in claims] == ["Eq. 6", "Lemma C.3",
                                                        "Lemma C.3 (corrected constants)"]
    assert figures == {}
