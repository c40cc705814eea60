"""Safe-PCE's sample complexity between the paper's bounds, on App. G's hard family.

For each cell of a grid in 1/eps, 1/xi or C = 2^m (Ni & Kamgarpour 2026, arXiv:2601.21845):

* **Lower bound** (Theorem 5.1, explicit Bretagnolle-Huber form,
  :func:`safepce.bounds.hard_instance.sample_lower_bound`): loop-transition samples any algorithm
  that is
  eps-optimal and feasible with probability >= 1 - delta on every task needs on the null task.
* **Empirical**: Safe-PCE with the paper's own constants (the ``theory`` preset, no tuning) on
  test tasks drawn from D (uniform over the 2^m tasks), trained by Algorithm 1 (distance oracle,
  worst-case O_s); its sample complexity is
  :func:`safepce.bounds.sample_complexity.episodes_to_accuracy`
  (episodes until pi_out, the running mixture of deployed policies, is eps-optimal and feasible
  and stays so until K), in transitions = episodes x H. A run that never settles within K is
  censored (counted as > K H); a quantile is finite only if enough runs settled.
* **Upper bound**: the smallest K at which App. E's explicit bound on Reg(K) (Theorem 4.2's four
  terms, :func:`safepce.bounds.upper.theorem_4_2_terms`) divided by K is at most eps, with E = 2^m
  candidates, v_{l,s} = xi and alpha_{l,1} of Eq. 6 (what every run of the cell shares), in
  transitions (x H). Since pi_out's reward gap is Reg(K)/K (Eq. 1 summed, divided by K), a
  bound on Reg(K)/K <= eps bounds the episodes until pi_out is eps-optimal.

How the constants are set and why the paper's conditions hold: Safe-PCE's stage lengths are
32 ln(4K/delta) / ((1-gamma)^2 v^2) with v of the order of xi (Ineq. 5 and Eq. 6), so the grid
sits where (1-gamma) xi is as large as the construction allows. At gamma 0.75 the hard family
exists only for xi <= 0.45 (its sink utility c_z must stay in [-1, 1]); at gamma 0.8 it exists up
to xi = 0.8 (m = 1), 0.6 (m = 2) and 0.5 (m = 3), which shortens stages four-fold. c1 = 2.0 in
(1, gamma/(1-gamma)); c3 = 15 (20 for the C grid) is the smallest value on {10, 15, 20, 30} at
which every cell of the grid has disjoint eps-optimal feasible sets (checked exactly by
:func:`check_hard_family`): the construction's default c3 = 1 + 8/gamma^(2m+4) forces
eps <= 0.05, where no run settles within a simulable K. The cover radius 1e-5 is far below a2
(>= 0.09 on every cell), so the cover holds every task exactly (the test task is a cover task:
prediction error 0, and Lemma 3.5's (8L + 18) eps <= xi holds), and it keeps Theorem 4.2's
per-episode term 4 eps L (1 + 1/(xi (1-gamma))) far below the accuracy.
delta = 0.01 < 2^-m / 3 lets Algorithm 1's cover hold all 2^m tasks (3 delta N uncovered < one
task's share).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError
from safepce.theory.algorithms.safe_pce import THEORY, SafePCE, mixture_weights
from safepce.theory.figures import TEXT_WIDTH, new_figure, styled
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.results import write_json
from safepce.theory.sweep import map_runs
from safepce.theory.training import TrainingResult, train

from .hard_instance import hard_family, sample_lower_bound
from .sample_complexity import episodes_to_accuracy, fitted_slope_with_error
from .upper import theorem_4_2_terms

GAMMA = 0.8
RADIUS = 1e-5
DELTA = 0.01
HORIZON = 40
#: the theorem's exponent of each parameter in the sample complexity (Corollary 4.3, Thm 5.1)
EXPONENTS = {"1/eps": 2.0, "1/xi": 2.0, "C": 1.0}


@dataclass(frozen=True)
class Cell:
    """One grid point: the hard family's (m, xi, eps) and construction constants c1, c3."""

    parameter: str
    m: int
    xi: float
    eps: float
    c1: float
    c3: float

    @property
    def value(self) -> float:
        """The cell's abscissa: 1/eps, 1/xi or C = 2^m."""
        return {"1/eps": 1 / self.eps, "1/xi": 1 / self.xi, "C": 2.0**self.m}[self.parameter]

    def family(self):
        return hard_family(self.m, GAMMA, self.xi, self.eps, c1=self.c1, c3=self.c3)


def grids(quick: bool) -> list[Cell]:
    """The cells of the three grids (quick: 3 per parameter; full: 4)."""
    eps = (0.25, 0.2, 0.15) if quick else (0.25, 0.2, 0.15, 0.12)
    xi = (0.8, 0.65, 0.5) if quick else (0.8, 0.65, 0.5, 0.4)
    # m = 4 leaves the construction's range at gamma 0.8 (sink utility above 1) for every
    # c1 in [1.6, 2.8] and c3 in [10, 30] with these xi, eps: C has three cells in both modes
    return ([Cell("1/eps", 1, 0.6, e, 2.0, 15.0) for e in eps]
            + [Cell("1/xi", 1, x, 0.2, 2.0, 15.0) for x in xi]
            + [Cell("C", m, 0.4, 0.2, 2.0, 20.0) for m in (1, 2, 3)])


def cell_training(cell: Cell) -> TrainingResult:
    """Algorithm 1 on the cell's family (distance oracle at RADIUS, worst-case O_s)."""
    return train(cell.family().distribution, DistanceCoverage(RADIUS), DELTA, seed=0,
                 safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)


def upper_bound_episodes(cell: Cell) -> float:
    """Smallest K with App. E's bound on Reg(K) / K <= eps (E = 2^m, v_s = xi); inf if the
    bound's per-episode terms alone exceed eps."""
    n = 2**cell.m
    L = simulation_lemma_constant(GAMMA)
    alpha_1 = mixture_weights(cell.xi, RADIUS, L, GAMMA, 1)[1]

    def ratio(log_k: float) -> float:
        K = 10.0**log_k
        return theorem_4_2_terms(K, DELTA, RADIUS, GAMMA, cell.xi, n, [cell.xi] * n,
                                 [alpha_1] * n).total / K

    low, high = 0.0, 40.0
    if ratio(high) > cell.eps:
        return math.inf
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (low, middle) if ratio(middle) <= cell.eps else (middle, high)
    return 10.0**high


def _cell_runs(args) -> list[dict]:
    """Worker: Safe-PCE [theory] runs of one cell on the given test tasks and seeds."""
    cell, training_path, tasks, seeds, n_episodes = args
    family = cell.family()
    training = TrainingResult.load(training_path)
    units = family.tasks[0].utility_form
    out = []
    for index, seed in zip(tasks, seeds, strict=True):
        algorithm = SafePCE(training, units, HORIZON, preset=THEORY, eps=RADIUS, delta=DELTA)
        record = run_test_phase(algorithm, family.tasks[int(index)], n_episodes, HORIZON,
                                seed=int(seed))
        events = record.log["events"]
        eliminations = [e for e in events if e["event"] == "eliminate"]
        settled = episodes_to_accuracy(record, cell.eps * units.reward_scale)
        out.append({
            "task": int(index), "seed": int(seed),
            "episodes_to_accuracy": settled,           # None: never settled within K
            "violated": bool(record.violated.any()),
            "eliminations": len(eliminations),
            "reward_eliminations": sum("reward" in e["test"] for e in eliminations),
            "constraint_eliminations": sum("constraint" in e["test"] for e in eliminations),
            "stage_advances": sum(e["event"] == "stage" for e in events),
            "candidates_tried": len(record.log["candidate_order"]),
            "final_alpha": float(record.log["final_alpha"]),
        })
    return out


def run_cell(cell: Cell, out: Path, n_runs: int, n_episodes: int, seed: int,
             workers: int = 2) -> list[dict]:
    """``n_runs`` runs with test tasks drawn from D (uniform over the 2^m tasks) and fresh
    seeds; the records do not depend on ``workers``."""
    training = cell_training(cell)
    stem = f"sandwich_{cell.parameter.replace('/', '')}_{cell.value:g}"
    path = training.save(Path(out) / f"{stem}_training.npz")
    task_seed, run_seed = np.random.SeedSequence([seed, int(cell.value * 1000)]).spawn(2)
    tasks = np.random.default_rng(task_seed).integers(0, 2**cell.m, n_runs)
    seeds = run_seed.generate_state(n_runs, np.uint32)
    chunk = max(1, math.ceil(n_runs / (2 * workers)))
    jobs = [(cell, str(path), tasks[i:i + chunk], seeds[i:i + chunk], n_episodes)
            for i in range(0, n_runs, chunk)]
    return map_runs(_cell_runs, jobs, workers)


def _quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile with censored (inf) runs at the top: inf unless enough runs settled."""
    ordered = np.sort(values)
    position = q * (ordered.size - 1)
    lower, upper = ordered[math.floor(position)], ordered[math.ceil(position)]
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return math.inf
    return float(lower + (upper - lower) * (position - math.floor(position)))


def cell_row(cell: Cell, runs: list[dict], n_episodes: int) -> dict:
    """One row of sandwich.csv (every sample count in transitions = episodes x H)."""
    episodes = np.array([math.inf if r["episodes_to_accuracy"] is None
                         else r["episodes_to_accuracy"] for r in runs], dtype=np.float64)
    transitions = episodes * HORIZON
    null = transitions[np.array([r["task"] == 0 for r in runs], dtype=bool)]
    family = cell.family()
    return {
        "parameter": cell.parameter, "value": cell.value, "m": cell.m, "xi": cell.xi,
        "eps": cell.eps, "c1": cell.c1, "c3": cell.c3,
        "lower_bound": sample_lower_bound(family, DELTA),
        "empirical_median": _quantile(transitions, 0.5),
        "empirical_q10": _quantile(transitions, 0.1),
        "empirical_q90": _quantile(transitions, 0.9),
        "upper_bound": upper_bound_episodes(cell) * HORIZON,
        # Theorem 5.1's bound is stated for the null task M_0: its runs alone, for comparison
        "null_task_median": _quantile(null, 0.5) if null.size else math.nan,
        "null_task_runs": int(null.size),
        "runs": len(runs), "settled_runs": int(np.isfinite(episodes).sum()),
        "budget_transitions": n_episodes * HORIZON,
        "violating_runs": sum(r["violated"] for r in runs),
        "mean_eliminations": float(np.mean([r["eliminations"] for r in runs])),
        "reward_eliminations": sum(r["reward_eliminations"] for r in runs),
        "constraint_eliminations": sum(r["constraint_eliminations"] for r in runs),
        "mean_stage_advances": float(np.mean([r["stage_advances"] for r in runs])),
        "mean_final_alpha": float(np.mean([r["final_alpha"] for r in runs])),
    }


def slopes(rows: list[dict]) -> dict[str, dict]:
    """Per parameter: fitted slopes (with standard errors) of the empirical median (settled
    cells only), the lower bound and the upper bound."""
    out = {}
    for name in EXPONENTS:
        mine = [r for r in rows if r["parameter"] == name]
        finite = [r for r in mine if math.isfinite(r["empirical_median"])]
        empirical = fitted_slope_with_error([r["value"] for r in finite],
                                            [r["empirical_median"] for r in finite])
        lower = fitted_slope_with_error([r["value"] for r in mine],
                                        [r["lower_bound"] for r in mine])
        bounded = [r for r in mine if math.isfinite(r["upper_bound"])]
        upper = fitted_slope_with_error([r["value"] for r in bounded],
                                        [r["upper_bound"] for r in bounded])
        out[name] = {"empirical": empirical, "lower": lower, "upper": upper,
                     "settled_cells": len(finite), "cells": len(mine)}
    return out


@styled
def plot_sandwich(rows: list[dict]) -> Figure:
    """One log-log panel per parameter: the explicit lower bound, Safe-PCE's median over D with
    its 10-90% band (cells whose median lies beyond the budget drawn as open triangles at the
    budget), the median on the null task M_0, and the explicit upper bound; each panel's title
    gives the theorem's exponent and the fitted slopes (with standard errors)."""
    fitted = slopes(rows)
    fig = new_figure(TEXT_WIDTH, 3.3)
    axes = fig.subplots(1, 3)
    for panel, (ax, name) in enumerate(zip(axes, EXPONENTS, strict=True)):
        first = panel == 0
        mine = [r for r in rows if r["parameter"] == name]
        x = np.array([r["value"] for r in mine])
        s = fitted[name]
        ax.loglog(x, [r["upper_bound"] for r in mine], "s--", color="#c0392b",
                  label="upper bound (App. E)" if first else None)
        median = np.array([r["empirical_median"] for r in mine])
        finite = np.isfinite(median)
        q10 = np.array([r["empirical_q10"] for r in mine])
        q90 = np.array([r["empirical_q90"] for r in mine])
        budget = np.array([r["budget_transitions"] for r in mine], dtype=np.float64)
        ax.fill_between(x, np.where(np.isfinite(q10), q10, budget),
                        np.where(np.isfinite(q90), q90, budget), color="#1f77b4", alpha=0.2,
                        linewidth=0, label="Safe-PCE 10-90% over D" if first else None)
        ax.loglog(x[finite], median[finite], "o-", color="#1f77b4",
                  label="Safe-PCE median over D" if first else None)
        ax.loglog(x[~finite], budget[~finite], "^", color="#1f77b4", mfc="none",
                  label="median beyond the budget" if first else None)
        null = np.array([r.get("null_task_median", math.nan) for r in mine], dtype=np.float64)
        ax.loglog(x[np.isfinite(null)], null[np.isfinite(null)], "x", color="#1f77b4",
                  label="median on the null task M_0" if first else None)
        ax.loglog(x, [r["lower_bound"] for r in mine], "o-", color="#2ca02c",
                  label="lower bound (Theorem 5.1)" if first else None)
        slope, error = s["empirical"]
        empirical = (f"{slope:.2f}+-{error:.2f}" if math.isfinite(error) else
                     f"{slope:.2f}" if math.isfinite(slope) else "n/a")
        ax.set_title(f"exponent {EXPONENTS[name]:g}; fitted slopes:\n"
                     f"lower {s['lower'][0]:.2f}, upper {s['upper'][0]:.2f}, data {empirical}")
        ax.set_xticks(x, [f"{v:.3g}" for v in x])
        ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
        ax.set_xlabel(name)
        ax.set_ylabel("transitions")
    fig.suptitle("Safe-PCE [theory] on App. G's hard family, between Theorem 5.1 and App. E")
    fig.legend(loc="outside lower center", ncols=3)
    return fig


def sandwich(out: Path, quick: bool, workers: int = 2, progress: bool = False,
             seed: int = 0, store: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Every cell of :func:`grids`: (rows of sandwich.csv, per-run records). With a ``store``
    folder each cell's runs are kept as soon as the cell is done, and kept cells are read back
    instead of rerun (an interrupted sandwich resumes)."""
    n_runs, n_episodes = (30, 5_000_000) if quick else (100, 10_000_000)
    rows, records = [], []
    if store is not None:
        Path(store).mkdir(parents=True, exist_ok=True)
    for cell in tqdm(grids(quick), desc="sandwich cells", disable=not progress):
        path = None if store is None else Path(store) / (
            f"{cell.parameter.replace('/', '')}_{cell.value:g}_{n_runs}_{n_episodes}.json")
        if path is not None and path.exists():
            try:
                runs = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}: not a readable cell record ({exc}); remove it to "
                                 "rerun that cell") from None
        else:
            runs = run_cell(cell, out, n_runs, n_episodes, seed, workers)
            if path is not None:
                write_json(path, runs)
        rows.append(cell_row(cell, runs, n_episodes))
        records += [asdict(cell) | run for run in runs]
    return rows, records
