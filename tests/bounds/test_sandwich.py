"""The sandwich's pieces: the explicit upper bound inverted correctly, censored quantiles, the
lower bound recomputed from its formula, slopes with standard errors, reproducible runs; and a
verify whose failed check ends in exit code 1."""

import json
import math

import numpy as np
import pytest

import safepce.bounds.verify as verify
from safepce.bounds.cli import main
from safepce.bounds.sample_complexity import fitted_slope_with_error
from safepce.bounds.sandwich import (
    DELTA,
    GAMMA,
    RADIUS,
    Cell,
    _quantile,
    cell_row,
    grids,
    run_cell,
    upper_bound_episodes,
)
from safepce.bounds.upper import theorem_4_2_terms
from safepce.tabular.distance import simulation_lemma_constant


def test_upper_bound_is_the_least_k_with_bound_over_k_below_eps():
    cell = grids(quick=True)[0]
    K = upper_bound_episodes(cell)
    L = simulation_lemma_constant(GAMMA)
    # Eq. 6's alpha_1, written out here
    margin = cell.xi - 2 * RADIUS * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - GAMMA))

    def per_episode(k):
        return theorem_4_2_terms(k, DELTA, RADIUS, GAMMA, cell.xi, 2, [cell.xi] * 2,
                                 [alpha_1] * 2).total / k

    assert per_episode(K) <= cell.eps < per_episode(K / 1.001)
    assert 1e9 < K < 1e14                # the explicit bound: ~1e11 episodes at eps 0.25


def test_censored_quantiles():
    inf = math.inf
    assert _quantile(np.array([1.0, 2.0, 3.0, inf]), 0.5) == 2.5
    assert _quantile(np.array([1.0, inf, inf, inf]), 0.5) == inf
    assert _quantile(np.array([1.0, 2.0, inf, inf, inf]), 0.1) == pytest.approx(1.4)


def test_slope_and_standard_error():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    slope, error = fitted_slope_with_error(x, 3 * x**2)
    assert slope == pytest.approx(2.0) and error == pytest.approx(0.0, abs=1e-9)
    noisy = 3 * x**2 * np.array([1.1, 0.9, 1.05, 0.97])
    slope, error = fitted_slope_with_error(x, noisy)
    fit, covariance = np.polyfit(np.log(x), np.log(noisy), 1, cov=True)
    assert slope == pytest.approx(fit[0]) and error == pytest.approx(math.sqrt(covariance[0, 0]))


def test_cell_row_recomputes_the_lower_bound_and_counts():
    cell = Cell("C", 2, 0.4, 0.2, 2.0, 20.0)
    family = cell.family()
    runs = [{"task": t, "episodes_to_accuracy": None if e == math.inf else e, "violated": False,
             "eliminations": n,
             "reward_eliminations": 0, "constraint_eliminations": n, "stage_advances": 10,
             "final_alpha": 0.5} for t, e, n in ((0, 1000, 1), (1, 3000, 2), (0, math.inf, 3))]
    row = cell_row(cell, runs, 10_000)
    kl = family.q0 * math.log(family.q0 / family.q2) + (1 - family.q0) * math.log(
        (1 - family.q0) / (1 - family.q2))
    assert row["lower_bound"] == pytest.approx(3 * math.log(1 / (4 * DELTA)) / kl)
    assert row["empirical_median"] == 3000 * 40 and row["empirical_q90"] == math.inf
    assert row["settled_runs"] == 2 and row["mean_eliminations"] == 2.0
    assert row["null_task_runs"] == 2 and row["null_task_median"] == math.inf
    assert row["value"] == 4.0 and row["budget_transitions"] == 400_000


def test_runs_eliminate_and_do_not_depend_on_workers(tmp_path):
    cell = Cell("C", 2, 0.4, 0.2, 2.0, 20.0)
    one = run_cell(cell, tmp_path, 4, 1_500_000, seed=3, workers=1)
    two = run_cell(cell, tmp_path, 4, 1_500_000, seed=3, workers=2)
    assert one == two
    assert sum(r["constraint_eliminations"] for r in one) > 0
    assert all(not r["violated"] and r["stage_advances"] > 0 for r in one)


def test_a_failed_check_makes_verify_exit_1(tmp_path, monkeypatch):
    """Break the corrected simulation-lemma constants on purpose (ten times too small): the
    toolkit's check fails, verify.json says so and the exit code is 1 (Lemma C.3 as the paper
    states it is refuted either way); a refuted paper statement alone exits 0."""
    from safepce.bounds import falsify

    real = falsify.corrected_simulation_constants
    monkeypatch.setattr(falsify, "corrected_simulation_constants",
                        lambda gamma: tuple(x / 10 for x in real(gamma)))
    monkeypatch.setattr(verify, "QUICK", falsify.SearchBudget("test", 200, 20, 1, 100))
    monkeypatch.setattr(verify, "CLAIMS", (verify.ClaimCheck("lemma-c3", "Lemma C.3",
                                                             verify.claim_lemma_c3),))
    assert main(["verify", "--quick", "--quiet", "--out", str(tmp_path / "broken")]) == 1
    stated, corrected = json.loads((tmp_path / "broken" / "verify.json").read_text())
    assert stated["status"] == "refuted"
    assert corrected["status"] == "failed" and corrected["worst_margin"] < 0
    assert corrected["worst_ratio"] > 5

    def refuted(context):
        return [verify.Claim("Section 6: a statement", False, 1, -1.0, kind="paper-statement")]

    monkeypatch.setattr(verify, "CLAIMS", (verify.ClaimCheck("s6", "Section 6", refuted),))
    assert main(["verify", "--quick", "--quiet", "--out", str(tmp_path / "refuted")]) == 0


def test_verify_and_the_sandwich_resume_from_their_store(tmp_path, monkeypatch):
    """A claim (and a sandwich cell) already in the store is read back, not run again."""
    import safepce.bounds.sandwich as sandwich_module
    calls = []

    def claim(context):
        calls.append("claim")
        return [verify.Claim("X: a check", True, 1, 0.0)]

    table = (verify.ClaimCheck("x", "X", claim),)
    first, _ = verify.run_verify(tmp_path, claims=table, progress=False)
    second, _ = verify.run_verify(tmp_path, claims=table, progress=False)
    assert calls == ["claim"] and [c.status for c in second] == [c.status for c in first]

    cell = Cell("C", 1, 0.4, 0.2, 2.0, 20.0)
    monkeypatch.setattr(sandwich_module, "grids", lambda quick: [cell])

    def fake_runs(*args, **kwargs):
        calls.append("cell")
        return [{"task": 0, "episodes_to_accuracy": None, "violated": False, "eliminations": 1,
                 "reward_eliminations": 0, "constraint_eliminations": 1, "stage_advances": 3,
                 "final_alpha": 0.1}]

    monkeypatch.setattr(sandwich_module, "run_cell", fake_runs)
    rows_one, _ = sandwich_module.sandwich(tmp_path, True, store=tmp_path / "cells")
    rows_two, _ = sandwich_module.sandwich(tmp_path, True, store=tmp_path / "cells")
    assert calls.count("cell") == 1 and rows_one == rows_two
