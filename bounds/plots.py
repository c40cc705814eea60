"""Plots that put measured data beside the paper's bounds; each takes its data as arguments and
returns a :class:`matplotlib.figure.Figure` (``safepce.theory.figures.save_figure`` writes PNG +
PDF)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from safepce.theory.figures import TEXT_WIDTH, new_figure, styled

from .sample_complexity import fitted_slope
from .upper import theorem_4_2_terms


@styled
def plot_regret_envelope(runs: list[dict], xi: float, n_episodes: int, delta: float, eps: float,
                         gamma: float) -> Figure:
    """Cumulative regret of Safe-PCE [theory] runs (paper units; mean, 10%-90% band, every run
    faint) under Theorem 4.2's explicit App. E bound evaluated with the worst run's quantities
    (``xi`` pi_s's margin, ``delta``, ``eps`` and ``gamma`` of the instance)."""
    curves = np.array([r["curve"] for r in runs])
    episodes = np.linspace(1, n_episodes, curves.shape[1])
    fig = new_figure(TEXT_WIDTH / 2 + 0.5, 2.8)
    ax = fig.subplots()
    for curve in curves[:50]:
        ax.plot(episodes, curve, color="#1f77b4", alpha=0.08, linewidth=0.7)
    ax.plot(episodes, curves.mean(axis=0), color="#1f77b4", label="Safe-PCE [theory], mean")
    ax.fill_between(episodes, np.quantile(curves, 0.1, axis=0), np.quantile(curves, 0.9, axis=0),
                    color="#1f77b4", alpha=0.25, label="10%-90%")
    worst = max(runs, key=lambda r: r["regret"] / r["bound"])
    grid = np.linspace(max(10, n_episodes / 200), n_episodes, 60)
    bound = [theorem_4_2_terms(int(k), delta, eps, gamma, xi, worst["tried"],
                               worst["safe_margins"], worst["first_weights"]).total
             for k in grid]
    ax.plot(grid, bound, color="#c0392b", linestyle="--", label="Theorem 4.2 bound (App. E)")
    ax.set_yscale("log")
    ax.set_xlabel("episode K")
    ax.set_ylabel("cumulative regret (normalised units)")
    ax.set_title(f"{len(runs)} runs on the runnable family (gamma {gamma}, eps {eps})")
    fig.legend(loc="outside lower center", ncols=2)
    return fig


@styled
def plot_lower_bound_slopes(curves: dict) -> Figure:
    """On the hard family, against 1/eps, 1/xi and C (log-log, same parameters per panel): the
    explicit lower bound and the mean samples of a sequential identification algorithm, with
    fitted slopes."""
    fig = new_figure(TEXT_WIDTH, 2.6)
    axes = fig.subplots(1, 3)
    labels = {"eps": "1/eps", "xi": "1/xi", "C": "C = 2^m - 1 (other tasks)"}
    for ax, (name, (x, bound, samples)) in zip(axes, curves.items(), strict=True):
        x = np.asarray(x)
        axis = 1 / x if name in ("eps", "xi") else x
        ax.loglog(axis, bound, "o-", color="#1f77b4",
                  label="explicit lower bound (Bretagnolle-Huber)" if name == "eps" else None)
        ax.loglog(axis, samples, "^-", color="#ff7f0e",
                  label="sequential identification (mean samples)" if name == "eps" else None)
        ax.set_title(f"fitted slopes: bound {fitted_slope(axis, bound):.2f}, "
                     f"samples {fitted_slope(axis, samples):.2f}")
        ax.set_xlabel(labels[name])
        ax.set_ylabel("samples")
    fig.suptitle("hard family of App. G (Theorem 5.1)")
    fig.legend(loc="outside lower center", ncols=2)
    return fig


@styled
def plot_scaled_sweep(sweep: list[dict]) -> Figure:
    """Violation rate (Clopper-Pearson 95%) and mean regret of Safe-PCE against the factor
    that shrinks the theory constants (scaled preset)."""
    scale = np.array([s["scale"] for s in sweep])
    fraction = np.array([s["fraction"] for s in sweep])
    low = np.array([s["low"] for s in sweep])
    high = np.array([s["high"] for s in sweep])
    fig = new_figure(TEXT_WIDTH / 2 + 0.5, 2.6)
    ax = fig.subplots()
    ax.errorbar(scale, fraction, yerr=[fraction - low, high - fraction], fmt="o-", capsize=3,
                color="#c0392b", label="runs with a violation")
    ax.set_xscale("log")
    ax.set_xlabel("width factor f (1 = theory constants)")
    ax.set_ylabel("fraction of runs with a violation")
    twin = ax.twinx()
    twin.plot(scale, [s["mean_regret"] for s in sweep], "s--", color="#1f77b4",
              label="mean regret")
    twin.set_ylabel("mean regret (normalised)")
    twin.spines["right"].set_visible(True)
    fig.legend(loc="outside lower center", ncols=2)
    return fig
