"""The sandwich (bounds.sandwich): the explicit upper bound inverted correctly, the lower bound
recomputed from its formula, order-statistic quantile intervals with their stated coverage, the
grid's families valid, runs independent of workers and engine, and a status that planted bugs
turn red (Algorithm 2's stage length x 4; Ineq. 5's statistical width dropped); a verify whose
failed check ends in exit code 1."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

import safepce.bounds.claims as verify
from safepce.bounds import sandwich as sw
from safepce.bounds.cli import main
from safepce.bounds.hard_instance import check_hard_family
from safepce.bounds.sample_complexity import fitted_slope_with_error
from safepce.bounds.upper import theorem_4_2_terms
from safepce.tabular.distance import simulation_lemma_constant
from safepce.theory.algorithms import safe_pce

SMALL = sw.Cell("1/eps", 1, 0.8, 0.6, 0.25, 12_000_000)


def test_upper_bound_is_the_least_k_with_bound_over_k_below_eps():
    cell = sw.grids(quick=True)[0]
    K = sw.upper_bound_episodes(cell)
    L = simulation_lemma_constant(cell.gamma)
    # Eq. 6's alpha_1, written out here
    margin = cell.xi - 2 * sw.RADIUS * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - cell.gamma))

    def per_episode(k):
        # ln(4K/delta) at the runs' K, written as delta' = delta k / K_run at k episodes
        terms = theorem_4_2_terms(k, sw.DELTA * k / cell.n_episodes, sw.RADIUS, cell.gamma,
                                  cell.xi, 2, [cell.xi] * 2, [alpha_1] * 2)
        return terms.total / k

    assert per_episode(K) <= cell.eps < per_episode(K / 1.001)
    assert 1e9 < K < 1e14


def test_order_statistic_interval_has_its_coverage():
    """The interval [X_(l), X_(u)] for the 0.99 quantile: its ranks are where the binomial
    puts at most 2.5% on each side, and on 4,000 samples of 400 exponentials it covers the
    true quantile at least 95% of the time (Monte-Carlo, +- 1.1% at 3 sigma)."""
    n, q = 400, 0.99
    point, low, high = sw.quantile_with_interval(np.arange(1.0, n + 1), q)
    assert point == 396.0
    assert stats.binom.cdf(low - 1, n, q) <= 0.025 < stats.binom.cdf(low, n, q)
    assert stats.binom.sf(high - 1, n, q) <= 0.025
    truth = -math.log(1 - q)
    rng = np.random.default_rng(0)
    covered = [low <= truth <= high for low, high in
               (sw.quantile_with_interval(rng.exponential(size=n), q)[1:] for _ in range(4000))]
    assert np.mean(covered) >= 0.95 - 0.011
    # too few runs: no finite upper end; censored runs are inf and stay at the top
    assert sw.quantile_with_interval(np.ones(100), q)[2] == math.inf
    assert sw.quantile_with_interval(np.array([1.0] * 98 + [math.inf] * 2), q)[0] == math.inf


def test_slope_and_standard_error():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    slope, error = fitted_slope_with_error(x, 3 * x**2)
    assert slope == pytest.approx(2.0) and error == pytest.approx(0.0, abs=1e-9)
    assert sw._slope(x, 3 * x**2) == pytest.approx(2.0)
    assert math.isnan(sw._slope(x, [1.0, 2.0, math.inf, 3.0]))


def test_every_grid_cell_is_a_valid_hard_family():
    """check_hard_family exactly on every cell of the full grid: the Slater margin is xi, the
    constraint binds, and eps-optimal feasible sets are disjoint (Theorem 5.1's premise)."""
    for cell in sw.grids(quick=False):
        check = check_hard_family(cell.family())
        assert check["slater_margin"] > -1e-9, cell
        assert check["distinct"] > 0 and check["constraint_active"] > 0, cell
        assert 0 < check["distance_error"] < 1e-12 or check["distance_error"] == 0


def fake_run(task, settle, eliminations=1, sample="D"):
    return {"sample": sample, "task": task, "seed": 0, "settle_episode": settle,
            "final_u_gap": 0.0, "gate_samples_total": 100 * (task == 0) + 7,
            "gate_samples_settle": 5, "violated": False, "eliminations": eliminations,
            "stage_advances": 10, "candidates_tried": 1 + eliminations, "final_alpha": 0.5,
            "blocks": 3}


def test_cell_rows_recompute_the_lower_bound_and_count_runs():
    cell = replace(SMALL, parameter="C", m=2, xi=0.4, eps=0.2)
    family = cell.family()
    runs = [fake_run(0, 1000), fake_run(1, 3000), fake_run(0, None, sample="null")]
    rows = {r["task_type"]: r for r in sw.cell_rows(cell, runs)}
    kl = family.q0 * math.log(family.q0 / family.q2) + (1 - family.q0) * math.log(
        (1 - family.q0) / (1 - family.q2))
    assert rows["null"]["lower_bound"] == pytest.approx(3 * math.log(1 / (4 * sw.DELTA)) / kl)
    assert rows["D"]["runs"] == 2 and rows["null"]["runs"] == 2 and rows["other"]["runs"] == 1
    assert rows["D"]["empirical_median"] == 2000 * cell.horizon
    assert rows["null"]["censored_runs"] == 1 and rows["null"]["gate_samples_mean"] == 107
    assert rows["D"]["budget_transitions"] == cell.n_episodes * cell.horizon


def test_horizon_keeps_the_truncation_bias_below_1e_6():
    for gamma in (0.8, 0.9, 0.95):
        H = sw.horizon(gamma)
        assert gamma**H / (1 - gamma) <= 1e-6 < gamma**(H - 1) / (1 - gamma)


@pytest.fixture(scope="module")
def small_runs():
    return sw.run_cell(SMALL, 6, 2, seed=3, workers=2)


def test_runs_do_not_depend_on_workers_or_engine(small_runs):
    pytest.importorskip("dask.distributed")
    assert sw.run_cell(SMALL, 6, 2, seed=3, workers=1) == small_runs
    assert sw.run_cell(SMALL, 6, 2, seed=3, workers=2, engine="dask") == small_runs
    assert sum(r["eliminations"] for r in small_runs) > 0
    assert all(not r["violated"] and r["stage_advances"] > 0 for r in small_runs)


def status_of(cell, runs):
    rows = sw.cell_rows(cell, runs)
    rate = sw.rates([cell, replace(cell, eps=0.2)], [runs, runs])[0]
    return sw.rate_status(rate, rows), rows


def test_status_passes_on_the_real_runs(small_runs):
    (status, reasons), rows = status_of(SMALL, small_runs)
    assert status == "passed", reasons
    assert rows[0]["schedule_runs"] > 0 and rows[0]["schedule_mismatches"] == 0


def test_planted_stage_length_x4_fails(monkeypatch):
    """Algorithm 2's stage length (line 11) four times too long in SafePCE: the runs that never
    eliminate leave the schedule recomputed from the paper, and the claim fails."""
    real = safe_pce.theory_stage_length
    monkeypatch.setattr(safe_pce, "theory_stage_length", lambda *a, **k: 4 * real(*a, **k))
    runs = sw._cell_runs((SMALL, sw.cell_training(SMALL), [1, 1, 0], [1, 2, 3], ["D"] * 3))
    (status, reasons), _ = status_of(SMALL, runs)
    assert status == "failed" and "schedule" in " ".join(reasons)


def test_planted_dropped_statistical_width_fails(monkeypatch):
    """Ineq. 5 without its statistical term sqrt(2 ln(4K/delta) / (n (1-gamma)^2)): the
    near-optimal candidate is eliminated by noise, Lemma 4.5.2 breaks and the claim fails."""
    real = safe_pce.Constants.widths

    def narrow(self, n, n_episodes, pooled=False):
        width = self.eps * (self.L_reward + 1) * np.ones_like(np.asarray(n, dtype=float))
        return width, width

    certification = safe_pce.SafePCE._certification

    def without_statistics(self, reward_range, cost_range):
        bounds, _, e = certification(self, reward_range, cost_range)
        return bounds, 0.0, e                      # the exact blocks' width: a / sqrt(n) + e

    monkeypatch.setattr(safe_pce.Constants, "widths", narrow)
    monkeypatch.setattr(safe_pce.SafePCE, "_certification", without_statistics)
    runs = sw._cell_runs((SMALL, sw.cell_training(SMALL), [1, 1, 0, 1], [1, 2, 3, 4],
                          ["D"] * 4))
    (status, reasons), _ = status_of(SMALL, runs)
    assert status == "failed" and "Lemma 4.5.2" in " ".join(reasons)
    assert real is not narrow


def test_a_failed_check_makes_verify_exit_1(tmp_path, monkeypatch):
    """Break the corrected simulation-lemma constants on purpose (ten times too small): the
    toolkit's check fails, verify.json says so and the exit code is 1 (Lemma C.3 as the paper
    states it is refuted either way); a refuted paper statement alone exits 0."""
    from safepce.bounds import falsify

    real = falsify.corrected_simulation_constants
    monkeypatch.setattr(falsify, "corrected_simulation_constants",
                        lambda gamma: tuple(x / 10 for x in real(gamma)))
    monkeypatch.setattr(verify.falsified, "QUICK", falsify.SearchBudget("test", 200, 20, 1, 100))
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
    calls = []

    def claim(context):
        calls.append("claim")
        return [verify.Claim("X: a check", True, 1, 0.0)]

    table = (verify.ClaimCheck("x", "X", claim),)
    first, _ = verify.run_verify(tmp_path, claims=table, progress=False)
    second, _ = verify.run_verify(tmp_path, claims=table, progress=False)
    assert calls == ["claim"] and [c.status for c in second] == [c.status for c in first]

    def fake_runs(*args, **kwargs):
        calls.append("cell")
        return [fake_run(0, None), fake_run(1, 10, sample="D")]

    monkeypatch.setattr(sw, "run_cell", fake_runs)
    cells = [SMALL, replace(SMALL, eps=0.2)]
    one = sw.sandwich(tmp_path, True, store=tmp_path / "cells", cells=cells)
    two = sw.sandwich(tmp_path, True, store=tmp_path / "cells", cells=cells)
    assert calls.count("cell") == 2 and one[0] == two[0]
