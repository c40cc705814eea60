"""Sweeps that put measured rates beside the paper's parameters: violation rate against delta.

Algorithm 1's delta sets the cover (N, the greedy stop at 3 delta N uncovered, the stopping rule)
and so which test tasks have a close candidate; Safe-PCE's safety guarantee holds with
probability >= 1 - 26 delta - 9 delta ln C (Ni & Kamgarpour 2026, arXiv:2601.21845,
Theorem 4.2). The sweep retrains for each delta and measures the fraction of runs with any
infeasible deployed policy (Clopper-Pearson intervals).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from safepce.theory.experiment import (
    ViolationSettings,
    algorithm_keys,
    experiment_training,
    violation_rates,
)
from safepce.theory.figures import TEXT_WIDTH, new_figure, styled
from safepce.theory.settings import algorithm_delta, positive, setting
from safepce.theory.sweep import ResultStore
from safepce.theory.training import TrainingResult


@dataclass(frozen=True)
class SweepDeltaSettings(ViolationSettings):
    """Settings of ``sweep-delta``: ``violations`` retrained at each delta."""

    deltas: tuple[float, ...] = setting((0.02, 0.05, 0.1, 0.2, 0.3), "deltas of Algorithm 1",
                                        algorithm_delta, "numbers in (0, 1/3)")
    runs: int = setting(200, "runs per delta and algorithm", positive, "a positive integer")
    algorithms: tuple[str, ...] = setting(("safe-pce", "pce"), "test-time algorithms (registry "
                                          "keys)", choices=algorithm_keys)


def violation_rate_vs_delta(settings: SweepDeltaSettings, out: Path, workers: int = 2,
                            progress: bool = False, engine: str = "local",
                            scheduler: str | None = None) -> list[dict]:
    """One row per (delta, algorithm): cover size, runs, violating runs, fraction, 95% interval.

    Each delta keeps its runs in ``out/delta_<delta>/store``: an interrupted sweep resumes.
    """
    settings.validate()
    rows = []
    for delta in settings.deltas:
        single = dataclasses.replace(settings, delta=float(delta))
        folder = Path(out) / f"delta_{delta:g}"
        store = ResultStore(folder, {"command": "sweep-delta", "delta": float(delta),
                                     "runs": settings.runs, "episodes": settings.episodes,
                                     "seed": settings.seed, "family": settings.family,
                                     "family_file": settings.family_file,
                                     "algorithms": list(settings.algorithms)})
        path = folder / "training.npz"
        training = TrainingResult.load(path) if path.exists() else \
            experiment_training(single)[0]
        training.save(path)
        violation = ViolationSettings(**{f.name: getattr(single, f.name)
                                         for f in dataclasses.fields(ViolationSettings)})
        result = violation_rates(path, violation, workers=workers, progress=progress,
                                 engine=engine, scheduler=scheduler, store=store)
        for record in result["per_algorithm"]:
            rows.append({"delta": float(delta), "key": record["key"],
                         "algorithm": record["algorithm"], "preset": record["preset"],
                         "cover_size": training.cover_size, "runs": record["runs"],
                         "violating_runs": record["runs_with_violation"],
                         "fraction": record["fraction"], "low": record["clopper_pearson_low"],
                         "high": record["clopper_pearson_high"]})
    return rows


@styled
def plot_violation_vs_delta(rows: list[dict]) -> Figure:
    """Fraction of runs with a violation (95% Clopper-Pearson bars) against delta."""
    fig = new_figure(TEXT_WIDTH / 2 + 0.5, 2.6)
    ax = fig.subplots()
    for key in dict.fromkeys(r["key"] for r in rows):
        mine = [r for r in rows if r["key"] == key]
        ax.errorbar([r["delta"] for r in mine], [r["fraction"] for r in mine],
                    yerr=[[r["fraction"] - r["low"] for r in mine],
                          [r["high"] - r["fraction"] for r in mine]], fmt="o-", capsize=3,
                    label=f"{key} [{mine[0]['preset']}]")
    ax.set_xscale("log")
    ax.set_xlabel("delta of Algorithm 1")
    ax.set_ylabel("fraction of runs with\na violation (95% CI)")
    ax.set_title("test tasks drawn from D")
    fig.legend(loc="outside lower center", ncols=2)
    return fig


@styled
def plot_violation_rates(per_algorithm: list[dict]) -> Figure:
    """``violations``: the fraction of runs with a violation per algorithm, with its 95%
    Clopper-Pearson interval (bars) and the count of violating runs."""
    labels = [f"{r['key']} [{r['preset']}]: {r['runs_with_violation']}/{r['runs']}"
              for r in per_algorithm]
    # the labels take the left of the figure; the axes keep ~2.5 in
    width = min(TEXT_WIDTH, 2.5 + 0.055 * max(len(label) for label in labels))
    fig = new_figure(width, 0.8 + 0.35 * len(per_algorithm))
    ax = fig.subplots()
    y = np.arange(len(per_algorithm))
    fraction = np.array([r["fraction"] for r in per_algorithm])
    low = np.array([r["clopper_pearson_low"] for r in per_algorithm])
    high = np.array([r["clopper_pearson_high"] for r in per_algorithm])
    ax.errorbar(fraction, y, xerr=[fraction - low, high - fraction], fmt="o", capsize=3,
                color="#c0392b")
    ax.set_yticks(y, labels)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("fraction of runs with an infeasible\ndeployed policy (95% CI)")
    return fig
