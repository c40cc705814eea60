"""Empirical sample complexity and violation rates, measured exactly from harness records.

Definitions (Section 4 of the paper):

* The output after k episodes is ``pi_out(k) = (1/k) sum_{j<=k} pi_j`` (an episode-level mixture),
  so its exact values are the running means of the deployed policies' exact values.
* ``episodes_to_accuracy(record, eps)``: the least k such that pi_out(k') is eps-optimal
  (``V*_r - V_r <= eps``) and feasible (``V_cost <= b``) for every k' in [k, K]; None if the run
  never settles. Transitions = episodes x H (every episode runs H steps).
* ``regret_rate_episodes(record, eps)``: K(eps) = the least K with Reg(K)/K <= eps.
* Violation rate: fraction of runs with any infeasible deployed policy, with a Clopper-Pearson
  interval.

``eps`` here is in the record's units (task units); divide by ``reward_scale`` for paper units.
"""

from __future__ import annotations

import math

import numpy as np

from safepce.tabular.errors import InputError
from safepce.theory.harness import VIOLATION_TOLERANCE, RunRecord
from safepce.theory.results import clopper_pearson


def output_values(record: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """Exact (reward, cost) values of pi_out(k) for k = 1..K (linear in the mixture, Def. 2.3)."""
    k = np.arange(1, record.reward_value.size + 1)
    return np.cumsum(record.reward_value) / k, np.cumsum(record.cost_value) / k


def episodes_to_accuracy(record: RunRecord, eps: float) -> int | None:
    """Least k after which pi_out stays eps-optimal and feasible until the end of the run."""
    reward, cost = output_values(record)
    good = (record.optimal_value - reward <= eps) & (cost <= record.budget + VIOLATION_TOLERANCE)
    if not good[-1]:
        return None
    bad = np.flatnonzero(~good)
    return int(bad[-1] + 2) if bad.size else 1


def transitions_to_accuracy(record: RunRecord, eps: float) -> int | None:
    episodes = episodes_to_accuracy(record, eps)
    return None if episodes is None else episodes * record.horizon


def regret_rate_episodes(record: RunRecord, eps: float) -> int | None:
    """K(eps) = least K with Reg(K)/K <= eps (None if never within the run)."""
    k = np.arange(1, record.reward_value.size + 1)
    hit = np.flatnonzero(record.cumulative_regret / k <= eps)
    return int(hit[0] + 1) if hit.size else None


def violation_rate(violating_runs: int, runs: int, confidence: float = 0.95) -> dict:
    """Fraction of runs with a violation and its exact (Clopper-Pearson) interval."""
    if isinstance(runs, bool) or runs < 1 or not 0 <= violating_runs <= runs:
        raise InputError(f"runs: expected 0 <= violating_runs <= runs, runs >= 1; got "
                         f"{violating_runs}, {runs}")
    low, high = clopper_pearson(violating_runs, runs, confidence)
    return {"runs": runs, "violating_runs": violating_runs, "fraction": violating_runs / runs,
            "low": low, "high": high}


def fitted_slope(x, y) -> float:
    """Least-squares slope of log y against log x (the exponent of a power law), over the
    positive finite points."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        raise InputError("x, y: expected at least two positive points to fit a slope")
    return fitted_slope_with_error(x[keep], y[keep])[0]


def fitted_slope_with_error(x, y) -> tuple[float, float]:
    """Least-squares slope of log y on log x and its standard error (slope nan with fewer than
    2 points, error nan with fewer than 3)."""
    x, y = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    if x.size < 2:
        return math.nan, math.nan
    if x.size == 2:
        return float((y[1] - y[0]) / (x[1] - x[0])), math.nan
    coefficients, covariance = np.polyfit(x, y, 1, cov=True)
    return float(coefficients[0]), float(math.sqrt(covariance[0, 0]))
