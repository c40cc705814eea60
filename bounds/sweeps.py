"""Sweeps that put measured rates beside the paper's parameters: violation rate against delta.

Algorithm 1's delta sets the cover (N, the greedy stop at 3 delta N uncovered, the stopping rule)
and so which test tasks have a close candidate; Safe-PCE's safety guarantee holds with
probability >= 1 - 26 delta - 9 delta ln C (Theorem 4.2). The sweep retrains for each delta and
measures the fraction of runs with any infeasible deployed policy (Clopper-Pearson intervals).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from theory.experiment import (  # noqa: E402
    ALGORITHMS,
    ExperimentSettings,
    experiment_training,
    violation_rates,
)
from theory.figures import save_figure  # noqa: E402
from theory.sweep import ResultStore  # noqa: E402
from theory.training import TrainingResult  # noqa: E402


def violation_rate_vs_delta(deltas, keys, n_runs: int, episodes: int, out: Path, seed: int = 0,
                            workers: int = 2, progress: bool = False, engine: str = "local",
                            scheduler: str | None = None) -> list[dict]:
    """One row per (delta, algorithm): cover size, runs, violating runs, fraction, 95% interval.

    Each delta keeps its runs in ``out/delta_<delta>/store``: an interrupted sweep resumes.
    """
    rows = []
    for delta in deltas:
        settings = ExperimentSettings(delta=float(delta), seed=seed, episodes=episodes,
                                      algorithms=tuple(keys)).validate()
        folder = out / f"delta_{delta:g}"
        store = ResultStore(folder, {"command": "sweep-delta", "delta": float(delta),
                                     "runs": n_runs, "episodes": episodes, "seed": seed,
                                     "algorithms": list(keys)})
        path = folder / "training.npz"
        training = TrainingResult.load(path) if path.exists() else \
            experiment_training(settings)[0]
        training.save(path)
        result = violation_rates(path, keys, n_runs, episodes, 600, float(delta), seed=seed + 1,
                                 workers=workers, progress=progress, engine=engine,
                                 scheduler=scheduler, store=store)
        for key, summary in result["per_algorithm"].items():
            rows.append({"delta": float(delta), "algorithm": key, "preset": ALGORITHMS[key][1],
                         "cover_size": training.cover_size, "runs": summary["runs"],
                         "violating_runs": summary["runs_with_violation"],
                         "fraction": summary["fraction"],
                         "low": summary["clopper_pearson_95"][0],
                         "high": summary["clopper_pearson_95"][1]})
    return rows


def plot_violation_vs_delta(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key in dict.fromkeys(r["algorithm"] for r in rows):
        mine = [r for r in rows if r["algorithm"] == key]
        x = [r["delta"] for r in mine]
        y = [r["fraction"] for r in mine]
        ax.errorbar(x, y, yerr=[[r["fraction"] - r["low"] for r in mine],
                                [r["high"] - r["fraction"] for r in mine]], fmt="o-", capsize=3,
                    label=f"{key} [{mine[0]['preset']}]")
    ax.set_xscale("log")
    ax.set_xlabel("delta of Algorithm 1")
    ax.set_ylabel("fraction of runs with a violation (95% CI)")
    ax.set_title("gridworld: test tasks drawn from D")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
