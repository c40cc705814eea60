"""Safe-PCE's sample complexity against the paper's bounds on App. G's hard family, measured as
the theorems count it, in grids of 1/eps, 1/xi, C = 2^m and 1/(1 - gamma).

What each theorem counts, and what is measured (Ni & Kamgarpour 2026, arXiv:2601.21845):

* **Upper bound** (Theorem 4.2 with App. E's explicit terms, Corollary 4.3, p. 7): run for K
  episodes, the output pi_out (the running mixture of the deployed policies) is eps-optimal and
  feasible once Reg(K)/K <= eps (Eq. 1 summed over the run, divided by K), with probability >=
  1 - delta. Measured per run: the settle episode T (the least k after which pi_out stays
  eps-optimal and feasible until the run's K, exact from the deployed policies' values,
  :func:`safepce.theory.exact_blocks.settle_episode`); per cell, over runs with test tasks from D:
  the median and the **(1 - delta) quantile** of T x H (transitions), with a distribution-free
  95% interval from order statistics. The explicit bound is the least k with App. E's terms
  (:func:`safepce.bounds.upper.theorem_4_2_terms`, E = 2^m, v_s = xi, ln(4K/delta) at the
  runs' own K) over k at most eps, times H.
* **Lower bound** (Theorem 5.1, p. 8; App. G, explicit Bretagnolle-Huber form
  :func:`safepce.bounds.hard_instance.sample_lower_bound`): samples of the loop transitions of
  gates 1..2^m - 1 that any algorithm succeeding with probability >= 1 - delta on every task
  needs on the null task M_0, in expectation. Measured: the same visits of Safe-PCE on M_0 --
  over the whole run (pi_out(K) is its output: the bound applies to these) and up to T.
* **Rates**: the growth exponent of the (1 - delta) quantile and of the median in each
  parameter (least squares on log-log, 95% bootstrap interval over runs) beside the fitted
  exponents of the upper bound (over the same cells) and, for the null task's loop samples, of
  the lower bound (:func:`rates`, :func:`exponent_rule`).
* **Status** per parameter (:func:`rate_status`): ``failed`` if a deployed policy violates, if
  more than a delta fraction of runs lose the near-optimal candidate (Lemma 4.5.2), if a run
  that never eliminated leaves Algorithm 2's schedule recomputed from the paper's formulas
  (:func:`predicted_settle`), if a (1 - delta) quantile exceeds the upper bound, or if the null
  task's loop samples fall below the lower bound; ``inconclusive`` if a cell's (1 - delta)
  quantile is censored (runs that never settle within K); else ``passed``. The exponents do
  not set the status: the measured levels sit 1e3-1e6 times above the lower bound and 1e3-1e5
  below the upper one, so a finite grid's slope contradicts neither bound (docs/verifying.md).

The runs are exact-block runs (:mod:`safepce.theory.exact_blocks`): Safe-PCE [theory] (the
paper's constants) drawing whole blocks of episodes as multinomial outcome counts, with the
step simulator's law (tested); a run of 3e8 episodes takes about a second.

The family: App. G's construction with a flat root (``routing="flat"``: one state with 2^m
actions, one per gate), so the gate depth does not grow with m and C = 16 exists at gamma 0.8;
c1 = 2 (q0 = 1 - c1 (1-gamma)/gamma), c3 = 10 (the smallest of {10, 15, 20, 30} at which each
cell's eps-optimal feasible sets are disjoint, checked by
:func:`safepce.bounds.hard_instance.check_hard_family` in the tests). Training: Algorithm 1 with a
distance oracle at radius 1e-5 (far below a2, so the cover holds every task exactly and the test
task is a cover task) and the worst-case O_s; delta = 0.01. H = ceil(log(1e-6 (1-gamma)) / log
gamma): the truncated returns' bias is at most 1e-6 in paper units, below every width the runs
reach (H = O~(1/(1-gamma)) as Lemma 4.5 asks). K per grid is set from pilot runs so that every
run settles with room (docs/verifying.md); censored runs still count, as > K.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from scipy import stats
from tqdm.auto import tqdm

from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError
from safepce.theory.algorithms.safe_pce import THEORY, SafePCE, mixture_weights
from safepce.theory.exact_blocks import run_exact_blocks
from safepce.theory.figures import TEXT_WIDTH, new_figure, styled
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.results import write_json
from safepce.theory.sweep import make_executor
from safepce.theory.training import TrainingResult, train

from .hard_instance import hard_family, sample_lower_bound
from .sample_complexity import fitted_slope_with_error
from .upper import theorem_4_2_terms

RADIUS = 1e-5
DELTA = 0.01
C1 = 2.0
C3 = 10.0
#: the exponent of each parameter in Corollary 4.3 and Theorem 5.1: xi^-2 eps^-2 (1-gamma)^-5 C
EXPONENTS = {"1/eps": 2.0, "1/xi": 2.0, "C": 1.0, "1/(1-gamma)": 5.0}
#: runs per cell drawn from D, and extra runs on the null task M_0 (for its visits)
RUNS = {True: (20, 8), False: (400, 40)}
BOOTSTRAP = 400
CONFIDENCE = 0.95


def horizon(gamma: float) -> int:
    """H with gamma^H / (1 - gamma) <= 1e-6: the truncated returns' bias in paper units."""
    return math.ceil(math.log(1e-6 * (1 - gamma)) / math.log(gamma))


@dataclass(frozen=True)
class Cell:
    """One grid point: the flat hard family's (m, gamma, xi, eps) and the runs' K."""

    parameter: str
    m: int
    gamma: float
    xi: float
    eps: float
    n_episodes: int
    c3: float = C3

    @property
    def value(self) -> float:
        """The cell's abscissa: 1/eps, 1/xi, C = 2^m or 1/(1 - gamma)."""
        return {"1/eps": 1 / self.eps, "1/xi": 1 / self.xi, "C": 2.0**self.m,
                "1/(1-gamma)": 1 / (1 - self.gamma)}[self.parameter]

    @property
    def horizon(self) -> int:
        return horizon(self.gamma)

    @property
    def stem(self) -> str:
        name = self.parameter.replace("/", "").replace("(", "").replace(")", "")
        return f"{name}_{self.value:.4g}"

    def family(self):
        return hard_family(self.m, self.gamma, self.xi, self.eps, c1=C1, c3=self.c3,
                           routing="flat")


def grids(quick: bool) -> list[Cell]:
    """The cells: full, 4 per parameter; quick, the 3 cheapest of each (smaller K)."""
    eps = (0.25, 0.2, 0.15, 0.12)
    xi = (0.8, 0.6, 0.5, 0.4)
    m = (1, 2, 3, 4)
    gamma = tuple(1 - 1 / x for x in (5.0, 6.0, 7.5, 10.0))
    k_small, k_large = (3 * 10**7, 10**8) if quick else (5 * 10**7, 3 * 10**8)
    take = slice(0, 3) if quick else slice(0, 4)
    return ([Cell("1/eps", 1, 0.8, 0.6, e, k_small) for e in eps[take]]
            + [Cell("1/xi", 1, 0.8, x, 0.2, k_small) for x in xi[take]]
            + [Cell("C", k, 0.8, 0.4, 0.2, k_large) for k in m[take]]
            + [Cell("1/(1-gamma)", 1, g, 0.6, 0.2, k_large) for g in gamma[take]])


@lru_cache(maxsize=32)
def cell_training(cell: Cell) -> TrainingResult:
    """Algorithm 1 on the cell's family (distance oracle at RADIUS, worst-case O_s); computed
    once per cell (the runs and the cell's schedule check share it)."""
    return train(cell.family().distribution, DistanceCoverage(RADIUS), DELTA, seed=0,
                 safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)


def upper_bound_episodes(cell: Cell) -> float:
    """Least k with App. E's bound on Reg(k) / k <= eps (E = 2^m, v_s = xi, alpha_1 of Eq. 6,
    ln(4K/delta) at the runs' K); inf if the per-episode terms alone exceed eps."""
    n = 2**cell.m
    L = simulation_lemma_constant(cell.gamma)
    alpha_1 = mixture_weights(cell.xi, RADIUS, L, cell.gamma, 1)[1]

    def ratio(log_k: float) -> float:
        k = 10.0**log_k
        return theorem_4_2_terms(k, DELTA, RADIUS, cell.gamma, cell.xi, n, [cell.xi] * n,
                                 [alpha_1] * n, log_episodes=cell.n_episodes).total / k

    low, high = 0.0, 40.0
    if ratio(high) > cell.eps:
        return math.inf
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (low, middle) if ratio(middle) <= cell.eps else (middle, high)
    return 10.0**high


def lemma_4_5_gap(cell: Cell) -> float:
    """Lemma 4.5.2's bound on V*(M) - u_l for the candidate under test: 4 eps L (1 + 1/(xi
    (1-gamma))) with eps the cover radius and L of Algorithm 2's line 1."""
    L = 1 / (1 - cell.gamma) + 2 * cell.gamma / (1 - cell.gamma)**2
    return 4 * RADIUS * L * (1 + 1 / (cell.xi * (1 - cell.gamma)))


def predicted_settle(cell: Cell, training: TrainingResult, task: int) -> int | None:
    """The settle episode of a run on ``task`` whose first candidate is never eliminated,
    recomputed from Algorithm 2 itself (not from :class:`SafePCE`): the optimistic candidate l
    (line 3), stage m deploying alpha_m pi_l + (1 - alpha_m) pi_s for the first n episodes with
    n - 2 >= 32 ln(4K/delta) / ((1-gamma)^2 v_{l,m}^2) (line 11, k - k0 - 1 = n - 2; v_{l,m} of
    Eq. 3), then alpha_{m+1} of Eq. 6 (literal form) while m <= m(l) = log_{C_l} eps (Eq. 7) and
    alpha_{m+1} > 0; values exact on the task (linear in the weights, Def. 2.3)."""
    from safepce import tabular
    from safepce.theory.exact_blocks import settle_episode

    family = cell.family()
    M = family.tasks[task]
    units = M.utility_form
    u = units.reward_value_to_paper(training.reward_values)
    v = units.cost_value_to_paper(training.cost_values)
    v_s_all = units.cost_value_to_paper(training.safe_cost_values)
    best = int(np.argmax(u))
    v_l, v_s = float(v[best]), float(v_s_all[best])
    gamma, eps, K = cell.gamma, RADIUS, cell.n_episodes
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma)**2
    kappa = (4 * L + 9) * eps
    alpha_1 = (v_s - 2 * eps * (L + 2)) / (v_s - 2 * eps * (L + 2) + 2 / (1 - gamma))
    C_l = 2 / 3 + kappa / (3 * v_s)
    m_limit = math.log(eps) / math.log(C_l)

    def alpha(m: int) -> float:
        if m == 0:
            return 0.0
        if m == 1:
            return alpha_1
        power = C_l ** (m - 1)
        return (v_s - kappa) * alpha_1 / (v_s * alpha_1 + (v_s - kappa - v_s * alpha_1) * power)

    candidate = tabular.evaluate(M, training.policies[best])
    safe = tabular.evaluate(M, training.safe_policy)
    r_l, c_l = candidate.reward_value, candidate.cost_value
    r_s, c_s = safe.reward_value, safe.cost_value
    segments, k, m = [], 0, 0
    while k < K:
        a = min(max(alpha(m), 0.0), 1.0)
        v_lm = a * v_l + (1 - a) * v_s
        length = 32 * math.log(4 * K / DELTA) / ((1 - gamma)**2 * v_lm**2) if v_lm > 0 \
            else math.inf
        advance = m <= m_limit and alpha(m + 1) > 0 and math.isfinite(length)
        n = min(math.ceil(length + 2), K - k) if advance else K - k
        segments.append([k, n, a * r_l + (1 - a) * r_s, a * c_l + (1 - a) * c_s])
        k += n
        m += 1
    return settle_episode(np.array(segments), tabular.solve(M, backend="highspy").reward_value,
                          float(M.budget), cell.eps * units.reward_scale)


def _cell_runs(args) -> list[dict]:
    """Worker: exact-block Safe-PCE [theory] runs of one cell on the given tasks and seeds."""
    cell, training, tasks, seeds, samples = args
    family = cell.family()
    units = family.tasks[0].utility_form
    mask = family.loop_mask()
    out = []
    for index, seed, sample in zip(tasks, seeds, samples, strict=True):
        algorithm = SafePCE(training, units, cell.horizon, preset=THEORY, eps=RADIUS,
                            delta=DELTA)
        run = run_exact_blocks(algorithm, family.tasks[int(index)], cell.n_episodes,
                               cell.horizon, int(seed), mask)
        settle = run.settle_episode(cell.eps * units.reward_scale)
        events = run.log["events"]
        eliminations = [e for e in events if e["event"] == "eliminate"]
        final = run.log["final_candidate"]
        optimum = float(units.reward_value_to_paper(run.optimal_value))
        out.append({
            "sample": sample, "task": int(index), "seed": int(seed),
            "settle_episode": settle,                    # None: never settled within K
            # Lemma 4.5.2: V*(M) - u_l of the candidate at the end (inf: every one eliminated)
            "final_u_gap": (math.inf if final is None
                            else optimum - float(algorithm.u[final])),
            "gate_samples_total": run.total_visits,
            "gate_samples_settle": (None if settle is None
                                    else run.visits_until(settle, [int(seed), 1])),
            "violated": run.violated,
            "eliminations": len(eliminations),
            "stage_advances": sum(e["event"] == "stage" for e in events),
            "candidates_tried": len(run.log["candidate_order"]),
            "final_alpha": float(run.log["final_alpha"]),
            "blocks": run.n_blocks,
        })
    return out


def run_cell(cell: Cell, n_runs: int, n_null: int, seed: int, workers: int = 2,
             engine: str = "local", scheduler: str | None = None) -> list[dict]:
    """``n_runs`` runs with test tasks drawn from D (uniform over the 2^m tasks) and ``n_null``
    more on the null task M_0, fresh seeds each; the records depend on neither ``workers`` nor
    ``engine`` (local processes or Dask)."""
    training = cell_training(cell)
    root = np.random.SeedSequence([seed, int(round(cell.value * 1000)), cell.m])
    task_seed, run_seed = root.spawn(2)
    tasks = np.concatenate([np.random.default_rng(task_seed).integers(0, 2**cell.m, n_runs),
                            np.zeros(n_null, dtype=np.int64)])
    samples = ["D"] * n_runs + ["null"] * n_null
    seeds = run_seed.generate_state(n_runs + n_null, np.uint32)
    total = n_runs + n_null
    chunk = max(1, math.ceil(total / (4 * workers)))
    jobs = [(cell, training, tasks[i:i + chunk], seeds[i:i + chunk], samples[i:i + chunk])
            for i in range(0, total, chunk)]
    with make_executor(engine, workers, scheduler) as executor:
        parts = list(executor.map(_cell_runs, jobs))
    return [record for part in parts for record in part]


def quantile_with_interval(values, q: float, confidence: float = CONFIDENCE
                           ) -> tuple[float, float, float]:
    """(point, low, high): the order statistic X_(ceil(n q)) and a distribution-free interval
    [X_(l), X_(u)] with P(X_(l) <= xi_q <= X_(u)) >= ``confidence`` (binomial order statistics;
    u beyond n gives an infinite upper end). Censored values are inf."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if n == 0:
        return math.nan, math.nan, math.nan
    point = ordered[max(1, math.ceil(n * q)) - 1]
    tail = (1 - confidence) / 2
    low_rank = int(stats.binom.ppf(tail, n, q))            # P(Bin < l) <= tail
    high_rank = int(stats.binom.ppf(1 - tail, n, q)) + 1    # P(Bin >= u) <= tail
    low = ordered[low_rank - 1] if low_rank >= 1 else -math.inf
    high = ordered[high_rank - 1] if high_rank <= n else math.inf
    return float(point), float(low), float(high)


def _transitions(runs: list[dict], cell: Cell) -> np.ndarray:
    return np.array([math.inf if r["settle_episode"] is None else r["settle_episode"]
                     for r in runs], dtype=np.float64) * cell.horizon


def cell_rows(cell: Cell, runs: list[dict]) -> list[dict]:
    """Rows of sandwich.csv for one cell: over D (``task_type`` "D"), on the null task M_0
    (runs drawn from D with task 0 plus the extra null runs) and on the other tasks."""
    family = cell.family()
    lower = sample_lower_bound(family, DELTA)
    upper = upper_bound_episodes(cell) * cell.horizon
    bound = lemma_4_5_gap(cell)
    training = cell_training(cell)
    predictions = {}
    schedule_runs = schedule_mismatch = 0
    for r in runs:
        if r["eliminations"] == 0 and r["final_u_gap"] != math.inf:
            if r["task"] not in predictions:
                predictions[r["task"]] = predicted_settle(cell, training, r["task"])
            schedule_runs += 1
            schedule_mismatch += predictions[r["task"]] != r["settle_episode"]
    groups = {"D": [r for r in runs if r["sample"] == "D"],
              "null": [r for r in runs if r["task"] == 0],
              "other": [r for r in runs if r["sample"] == "D" and r["task"] != 0]}
    rows = []
    for task_type, mine in groups.items():
        transitions = _transitions(mine, cell)
        point, low, high = quantile_with_interval(transitions, 1 - DELTA)
        gate = np.array([r["gate_samples_total"] for r in mine], dtype=np.float64)
        settled_gate = np.array([math.inf if r["gate_samples_settle"] is None
                                 else r["gate_samples_settle"] for r in mine])
        rows.append({
            "parameter": cell.parameter, "value": cell.value, "task_type": task_type,
            "m": cell.m, "gamma": cell.gamma, "xi": cell.xi, "eps": cell.eps, "c1": C1,
            "c3": cell.c3, "horizon": cell.horizon, "n_episodes": cell.n_episodes,
            "runs": len(mine), "censored_runs": int(np.sum(~np.isfinite(transitions))),
            "empirical_median": float(np.median(transitions)) if mine else math.nan,
            "quantile_1_minus_delta": point, "quantile_ci_low": low, "quantile_ci_high": high,
            "upper_bound": upper,
            "gate_samples_median": float(np.median(gate)) if mine else math.nan,
            "gate_samples_mean": float(gate.mean()) if mine else math.nan,
            "gate_samples_settle_median": (float(np.median(settled_gate)) if mine
                                           else math.nan),
            "lower_bound": lower,
            "budget_transitions": cell.n_episodes * cell.horizon,
            "violating_runs": sum(r["violated"] for r in mine),
            "lemma_4_5_breaks": sum(r["final_u_gap"] > bound for r in mine),
            "schedule_runs": schedule_runs if task_type == "D" else 0,
            "schedule_mismatches": schedule_mismatch if task_type == "D" else 0,
            "mean_eliminations": float(np.mean([r["eliminations"] for r in mine])) if mine
            else math.nan,
            "mean_stage_advances": (float(np.mean([r["stage_advances"] for r in mine]))
                                    if mine else math.nan),
        })
    return rows


def _slope(x, y) -> float:
    """Least-squares slope of log y on log x (:func:`fitted_slope_with_error`); nan unless every
    y is positive and finite."""
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y) & (y > 0)):
        return math.nan
    return fitted_slope_with_error(x, y)[0]


def _statistics(cells: list[Cell], runs_by_cell: list[list[dict]], rng=None):
    """Per cell: (median, (1 - delta) quantile) of transitions over D and the mean visits on
    the null task; with ``rng`` each cell's runs resampled with replacement first."""
    medians, quantiles, visits = [], [], []
    for cell, runs in zip(cells, runs_by_cell, strict=True):
        sample = [r for r in runs if r["sample"] == "D"]
        null = [r for r in runs if r["task"] == 0]
        if rng is not None:
            sample = [sample[i] for i in rng.integers(0, len(sample), len(sample))]
            null = [null[i] for i in rng.integers(0, len(null), len(null))] if null else null
        transitions = _transitions(sample, cell)
        medians.append(float(np.median(transitions)))
        quantiles.append(quantile_with_interval(transitions, 1 - DELTA)[0])
        visits.append(float(np.mean([r["gate_samples_total"] for r in null])) if null
                      else math.nan)
    return medians, quantiles, visits


def rates(cells: list[Cell], runs_by_cell: list[list[dict]], seed: int = 0) -> list[dict]:
    """Rows of sandwich_rates.csv, one per parameter: fitted exponents (least squares on
    log-log over the parameter's cells) of the median and (1 - delta) quantile of transitions
    over D and of the null task's mean visits, each with a 95% bootstrap interval (runs
    resampled within cells, ``BOOTSTRAP`` times); the lower and upper bounds' exponents over the
    same cells; and the status of :func:`rate_status`."""
    out = []
    for name, exponent in EXPONENTS.items():
        index = [i for i, c in enumerate(cells) if c.parameter == name]
        if not index:
            continue
        mine = [cells[i] for i in index]
        runs = [runs_by_cell[i] for i in index]
        x = [c.value for c in mine]
        estimate = [_slope(x, s) for s in _statistics(mine, runs)]
        rng = np.random.default_rng([seed, len(name)])
        draws = np.array([[_slope(x, s) for s in _statistics(mine, runs, rng)]
                          for _ in range(BOOTSTRAP)])
        intervals = []
        for column in range(3):
            finite = draws[:, column][np.isfinite(draws[:, column])]
            intervals.append((float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975)))
                             if finite.size == BOOTSTRAP else (math.nan, math.nan))
        row = {"parameter": name, "cells": len(mine), "theorem_exponent": exponent,
               "median_exponent": estimate[0], "median_ci_low": intervals[0][0],
               "median_ci_high": intervals[0][1],
               "quantile_exponent": estimate[1], "quantile_ci_low": intervals[1][0],
               "quantile_ci_high": intervals[1][1],
               "null_visits_exponent": estimate[2], "null_visits_ci_low": intervals[2][0],
               "null_visits_ci_high": intervals[2][1],
               "lower_bound_exponent": _slope(x, [sample_lower_bound(c.family(), DELTA)
                                                  for c in mine]),
               "upper_bound_exponent": _slope(x, [upper_bound_episodes(c) * c.horizon
                                                  for c in mine])}
        out.append(row)
    return out


def exponent_rule(rate: dict) -> str:
    """The exponent comparison alone: "above upper" when the (1 - delta) quantile's exponent
    interval lies above the upper bound's exponent, "below lower" when the null task's loop
    samples' interval lies below the lower bound's, else "inside" ("n/a" without intervals).
    Reported, not a status: over a finite grid, with the measured level 1e3-1e6 times above the
    lower bound and below the upper bound, a steeper or flatter slope contradicts neither
    Theorem 5.1 nor App. E (both are bounds on the level; their exponents are asymptotic)."""
    if not (math.isfinite(rate["quantile_ci_low"]) and math.isfinite(rate["null_visits_ci_high"])):
        return "n/a"
    if rate["quantile_ci_low"] > rate["upper_bound_exponent"]:
        return "above upper"
    if rate["null_visits_ci_high"] < rate["lower_bound_exponent"]:
        return "below lower"
    return "inside"


def rate_status(rate: dict, rows: list[dict]) -> tuple[str, list[str]]:
    """(status, reasons) of one parameter's claim from its rates row and its cells' rows of
    sandwich.csv. ``failed`` when any of these, each implied by the paper's statements about
    Safe-PCE [theory] or by Algorithm 2 itself, is broken in any cell:

    * no deployed policy violates (Lemma 4.5.1, safe exploration);
    * Lemma 4.5.2: the candidate under test keeps u_l >= V*(M) - 4 eps L (1 + 1/(xi (1-gamma)))
      in all but a delta fraction of runs (Clopper-Pearson lower end above delta fails);
    * every run that never eliminated settles exactly when Algorithm 2's schedule, recomputed
      from lines 3, 5, 11 and Eq. 6-7 (:func:`predicted_settle`), says;
    * the (1 - delta) quantile of transitions is at most App. E's bound at the runs' K;
    * the mean loop samples on M_0 are at least Theorem 5.1's bound, where the runs succeeded
      (settled within K) with probability >= 1 - delta.

    ``inconclusive`` if a cell's (1 - delta) quantile is censored; else ``passed``. The exponent
    comparison is :func:`exponent_rule` (reported beside)."""
    from safepce.theory.results import clopper_pearson

    name = rate["parameter"]
    mine = [r for r in rows if r["parameter"] == name]
    over_d = [r for r in mine if r["task_type"] == "D"]
    null = [r for r in mine if r["task_type"] == "null"]
    reasons = []
    if any(r["violating_runs"] for r in mine):
        reasons.append("a deployed policy violated")
    for r in over_d + null:
        breaks = r["lemma_4_5_breaks"]
        if breaks and clopper_pearson(breaks, r["runs"])[0] > DELTA:
            reasons.append(f"{name}={r['value']:.4g} ({r['task_type']}): {breaks}/{r['runs']} "
                           "runs lost the near-optimal candidate (Lemma 4.5.2)")
    for r in over_d:
        if r["schedule_mismatches"]:
            reasons.append(f"{name}={r['value']:.4g}: {r['schedule_mismatches']}/"
                           f"{r['schedule_runs']} runs off Algorithm 2's schedule")
        if r["quantile_1_minus_delta"] > r["upper_bound"]:
            reasons.append(f"{name}={r['value']:.4g}: (1-delta) quantile "
                           f"{r['quantile_1_minus_delta']:.3g} above the upper bound "
                           f"{r['upper_bound']:.3g}")
    success = all(r["censored_runs"] <= DELTA * r["runs"] for r in over_d)
    for r in null:
        if success and r["gate_samples_mean"] < r["lower_bound"]:
            reasons.append(f"{name}={r['value']:.4g}: null-task loop samples "
                           f"{r['gate_samples_mean']:.3g} below the lower bound "
                           f"{r['lower_bound']:.3g}")
    if reasons:
        return "failed", reasons
    censored = [r for r in over_d if not math.isfinite(r["quantile_1_minus_delta"])]
    if censored:
        return "inconclusive", [f"{len(censored)} cells censored at the (1-delta) quantile"]
    return "passed", []


@styled
def plot_sandwich(rows: list[dict], rate_rows: list[dict]) -> Figure:
    """One log-log panel per parameter: the upper bound (App. E, transitions), Safe-PCE's
    (1 - delta) quantile over D with its order-statistic 95% interval (a dotted line up to the
    budget where too few runs bound it above) and its median, censored cells as upward arrows
    from the budget line; the lower bound (Theorem 5.1, loop samples, also labelled in
    episodes) beside Safe-PCE's mean loop samples on M_0. Status and fitted exponents (95%
    bootstrap interval) in each panel's title; one legend below."""
    rates_by = {r["parameter"]: r for r in rate_rows}
    names = [n for n in EXPONENTS if any(r["parameter"] == n for r in rows)]
    columns = min(2, len(names))
    fig = new_figure(TEXT_WIDTH, 2.9 * math.ceil(len(names) / columns) + 0.6)
    axes = np.atleast_1d(fig.subplots(math.ceil(len(names) / columns), columns)).ravel()
    for unused in axes[len(names):]:
        unused.set_visible(False)
    axes = axes[:len(names)]
    for panel, (ax, name) in enumerate(zip(axes, names, strict=True)):
        first = panel == 0
        over_d = [r for r in rows if r["parameter"] == name and r["task_type"] == "D"]
        null = [r for r in rows if r["parameter"] == name and r["task_type"] == "null"]
        rate = rates_by[name]
        x = np.array([r["value"] for r in over_d])
        budget = np.array([r["budget_transitions"] for r in over_d], dtype=np.float64)
        q = np.array([r["quantile_1_minus_delta"] for r in over_d])
        low = np.array([r["quantile_ci_low"] for r in over_d])
        high = np.array([r["quantile_ci_high"] for r in over_d])
        median = np.array([r["empirical_median"] for r in over_d])
        ax.loglog(x, [r["upper_bound"] for r in over_d], "s--", color="#c0392b",
                  label="upper bound (App. E), transitions" if first else None)
        for xv, uv, bv in zip(x, [r["upper_bound"] for r in over_d], budget, strict=True):
            if not math.isfinite(uv):
                ax.annotate("upper bound\ninfinite", (xv, bv * 30), fontsize=5, ha="center",
                            color="#c0392b")
        ax.loglog(x, budget, ":", color="0.5", label="budget K H" if first else None)
        seen = np.isfinite(q)
        closed = seen & np.isfinite(high)
        ax.errorbar(x[closed], q[closed], yerr=np.vstack([q - low, high - q])[:, closed],
                    fmt="none", ecolor="#1f77b4", capsize=2)
        for xv, qv, bv in zip(x[seen & ~closed], q[seen & ~closed], budget[seen & ~closed],
                              strict=True):
            ax.plot([xv, xv], [qv, bv], ":", color="#1f77b4", linewidth=0.8)
        ax.loglog(x[seen], q[seen], "o-", color="#1f77b4",
                  label="Safe-PCE (1-delta) quantile over D (95% interval)" if first else None)
        for xv, bv in zip(x[~seen], budget[~seen], strict=True):
            ax.annotate("", xy=(xv, bv * 4), xytext=(xv, bv),
                        arrowprops={"arrowstyle": "->", "color": "#1f77b4"})
        ax.loglog(x[np.isfinite(median)], median[np.isfinite(median)], "^", color="#1f77b4",
                  mfc="none", label="Safe-PCE median over D" if first else None)
        ax.loglog(x, [r["gate_samples_mean"] for r in null], "x-", color="#2ca02c",
                  label="Safe-PCE loop samples on M_0 (mean)" if first else None)
        lower = np.array([r["lower_bound"] for r in null])
        ax.loglog(x, lower, "o--", color="#2ca02c", mfc="none",
                  label="lower bound (Theorem 5.1), loop samples" if first else None)
        for xv, lv, r in zip(x, lower, null, strict=True):
            ax.annotate(f"{lv / r['horizon']:.2g} ep.", (xv, lv), fontsize=5,
                        textcoords="offset points", xytext=(0, 5), ha="center")
        ax.set_xticks(x, [f"{v:.3g}" for v in x])
        ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
        ax.set_xlabel(name)
        ax.set_title(
            f"{name}: {rate.get('status', '')} (theorem exponent {EXPONENTS[name]:g})\n"
            f"quantile {rate['quantile_exponent']:.2f} [{rate['quantile_ci_low']:.2f}, "
            f"{rate['quantile_ci_high']:.2f}], median {rate['median_exponent']:.2f}, "
            f"upper {rate['upper_bound_exponent']:.2f}\nM_0 loop samples "
            f"{rate['null_visits_exponent']:.2f}, lower {rate['lower_bound_exponent']:.2f}",
            fontsize=5.5)
    for ax in axes[::columns]:
        ax.set_ylabel("transitions / loop samples")
    censored = any(not math.isfinite(r["quantile_1_minus_delta"]) for r in rows
                   if r["task_type"] == "D")
    fig.suptitle("Safe-PCE [theory] on App. G's hard family (flat root)"
                 + ("; arrows: censored cells" if censored else ""), fontsize=7)
    fig.legend(loc="outside lower center", ncols=3, fontsize=5.5)
    return fig


def sandwich(out, quick: bool, workers: int = 2, progress: bool = False, seed: int = 0,
             store=None, engine: str = "local", scheduler: str | None = None,
             cells: list[Cell] | None = None):
    """Every cell of :func:`grids`: (rows of sandwich.csv, rows of sandwich_rates.csv, per-run
    records). With a ``store`` folder each cell's runs are kept as soon as the cell is done and
    read back instead of rerun (an interrupted sandwich resumes)."""
    from pathlib import Path

    n_runs, n_null = RUNS[bool(quick)]
    cells = grids(quick) if cells is None else cells
    if store is not None:
        Path(store).mkdir(parents=True, exist_ok=True)
    runs_by_cell, rows, records = [], [], []
    for cell in tqdm(cells, desc="sandwich cells", disable=not progress):
        path = None if store is None else Path(store) / (
            f"{cell.stem}_{cell.n_episodes}_{n_runs}_{n_null}_{seed}.json")
        if path is not None and path.exists():
            try:
                runs = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}: not a readable cell record ({exc}); remove it to "
                                 "rerun that cell") from None
        else:
            runs = run_cell(cell, n_runs, n_null, seed, workers, engine, scheduler)
            if path is not None:
                write_json(path, runs)
        runs_by_cell.append(runs)
        rows += cell_rows(cell, runs)
        records += [asdict(cell) | run for run in runs]
    rate_rows = rates(cells, runs_by_cell, seed)
    for rate in rate_rows:
        rate["exponent_rule"] = exponent_rule(rate)
        rate["status"], reasons = rate_status(rate, rows)
        rate["reasons"] = "; ".join(reasons)
    return rows, rate_rows, records
