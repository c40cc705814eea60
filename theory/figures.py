"""Figures of the paper's experiment (Ni & Kamgarpour 2026, arXiv:2601.21845, Section 6).

Every plotting function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
backend is switched, nothing global is touched: a notebook shows the returned figure inline);
:func:`save_figure` writes it as PNG and PDF. One style (:data:`STYLE`, sized for a two-column
paper: full width 7 in, 8-pt text) applies to every figure through :func:`styled`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from safepce.tabular.families import (
    ACTION_DELTAS,
    GOAL_STATE,
    GRID_SIZE,
    HAZARD_STATES,
    coordinates,
)

#: full text width of a two-column paper, in inches
TEXT_WIDTH = 7.0
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "savefig.dpi": 200, "pdf.fonttype": 42,
}


def styled(plot):
    """Draw ``plot`` under :data:`STYLE` (an rcParams context: nothing leaks out), and lay the
    figure out once before returning it: constrained layout's first pass on axes of fixed
    aspect (Figure 1's grids) leaves titles and labels cut at the edge, its second does not."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            fig = plot(*args, **kwargs)
            if isinstance(fig, Figure):
                fig.draw_without_rendering()
            return fig
    return wrapper


def new_figure(width: float = TEXT_WIDTH, height: float = 2.8) -> Figure:
    """A pyplot-free figure with constrained layout (legends may go ``outside``)."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | Path) -> list[Path]:
    """Write ``fig`` as ``path`` with suffix .png and .pdf; returns both paths."""
    path = Path(path)
    written = []
    with mpl.rc_context(STYLE):
        for suffix in (".png", ".pdf"):
            target = path.with_suffix(suffix)
            fig.savefig(target)
            written.append(target)
    return written


def draw_gridworld_policy(ax, policy: np.ndarray, title: str = "") -> None:
    """Draw a gridworld policy: one arrow per action with length proportional to pi(a|s),
    hazards hatched, the goal shaded (the layout of the paper's Figure 1)."""
    ax.set_xlim(-0.5, GRID_SIZE - 0.5)
    ax.set_ylim(-0.5, GRID_SIZE - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(GRID_SIZE))
    ax.set_yticks(range(GRID_SIZE))
    ax.set_xticks(np.arange(-0.5, GRID_SIZE), minor=True)
    ax.set_yticks(np.arange(-0.5, GRID_SIZE), minor=True)
    ax.grid(which="minor", color="0.75", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for state in HAZARD_STATES:
        x, y = coordinates(state)
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="#f4c7c3", edgecolor="#c0392b",
                               hatch="///", linewidth=0.0))
    gx, gy = coordinates(GOAL_STATE)
    ax.add_patch(Rectangle((gx - 0.5, gy - 0.5), 1, 1, facecolor="#a9dfbf"))
    ax.text(gx, gy, "goal", ha="center", va="center", fontsize=8)
    for state in range(GRID_SIZE * GRID_SIZE):
        if state == GOAL_STATE:
            continue
        x, y = coordinates(state)
        for action, (dx, dy) in enumerate(ACTION_DELTAS):
            weight = policy[state, action]
            if weight > 1e-3:
                ax.arrow(x, y, 0.38 * weight * dx, 0.38 * weight * dy, width=0.02,
                         head_width=0.14 * np.sqrt(weight), head_length=0.12 * np.sqrt(weight),
                         length_includes_head=True, color="#1f3b73")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


@styled
def plot_figure1(policies: Mapping[str, np.ndarray]) -> Figure:
    """The paper's Figure 1: optimal policies side by side, one panel per entry."""
    fig = new_figure(min(TEXT_WIDTH, 3.3 * len(policies)), 3.4)
    axes = fig.subplots(1, len(policies), squeeze=False)
    for ax, (title, policy) in zip(axes[0], policies.items(), strict=True):
        draw_gridworld_policy(ax, policy, title)
    return fig


@styled
def plot_training(result, distribution) -> Figure:
    """The training phase at a glance: D with the cover (1-D: D's density and the cover's balls;
    d-D: draws from D in the first two coordinates and the cover's tasks), and the values of
    each cover policy (u_i, v_i) and of pi_s on each cover task (u_{i,s}, v_{i,s}), task units,
    one cost line per constraint."""
    if distribution.parameter_dim > 1:
        return _plot_training_plane(result, distribution)
    order = np.argsort(result.cover_parameters[:, 0])
    centres = result.cover_parameters[order, 0]
    radius = result.settings["coverage"]["radius"]
    if result.settings["coverage"]["oracle"] == "distance" and distribution.distance_scale:
        radius = radius / distribution.distance_scale
    fig = new_figure(TEXT_WIDTH / 2 + 1, 6.0)
    top, middle, bottom = fig.subplots(3, 1, sharex=True)
    span = max(float(np.ptp(centres)), 4 * radius, 1e-9)
    grid = np.linspace(centres.min() - span / 4, centres.max() + span / 4, 400)
    try:
        top.plot(grid, np.gradient(distribution.cdf(grid), grid), color="0.3")
    except NotImplementedError:      # no closed-form CDF: a histogram of draws from D
        top.hist(distribution.sample(4000, 0)[:, 0], bins=60, density=True, color="0.6")
    for c in centres:
        top.axvspan(c - radius, c + radius, color="#5dade2", alpha=0.35)
    top.set_ylabel("density of D")
    name = distribution.parameter_names[0]
    top.set_title(f"cover of {result.cover_size} tasks (balls of radius {radius:g} in {name})")
    _plot_cover_values(middle, bottom, centres, order, result, distribution)
    bottom.set_xlabel(name)
    return fig


def _plot_training_plane(result, distribution) -> Figure:
    """:func:`plot_training` for a parameter of d >= 2 coordinates (the first two drawn)."""
    order = np.lexsort(result.cover_parameters.T[::-1])
    fig = new_figure(TEXT_WIDTH / 2 + 1, 7.0)
    top, middle, bottom = fig.subplots(3, 1, height_ratios=(1.4, 1, 1))
    draws = distribution.sample(4000, 0)
    names = distribution.parameter_names
    top.scatter(draws[:, 0], draws[:, 1], s=2, color="0.6", label="draws from D")
    top.scatter(result.cover_parameters[:, 0], result.cover_parameters[:, 1], s=30,
                marker="x", color="#1f77b4", label="cover tasks")
    top.set_xlabel(names[0])
    top.set_ylabel(names[1])
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    top.set_title(f"cover of {result.cover_size} tasks")
    index = np.arange(1, result.cover_size + 1)
    _plot_cover_values(middle, bottom, index, order, result, distribution)
    bottom.set_xlabel("cover task (in parameter order)")
    return fig


def _plot_cover_values(middle, bottom, x, order, result, distribution) -> None:
    """The cover's reward values (middle) and cost values with the budgets (bottom)."""
    middle.plot(x, result.reward_values[order], "o-", label="u_i = V_r(pi_i) on M_i")
    middle.plot(x, result.safe_reward_values[order], "s--", label="u_i,s = V_r(pi_s) on M_i")
    middle.set_ylabel("reward value")
    middle.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    budgets = np.atleast_1d(distribution.build(result.cover_parameters[order[0]]).budgets)
    cost = np.asarray(result.cost_values).reshape(result.cover_size, -1)[order]
    safe = np.asarray(result.safe_cost_values).reshape(result.cover_size, -1)[order]
    for k, budget in enumerate(budgets):
        tag = "" if budgets.size == 1 else f" (constraint {k + 1})"
        line, = bottom.plot(x, cost[:, k], "o-", label=f"v_i = V_cost(pi_i){tag}")
        bottom.plot(x, safe[:, k], "s--", color=line.get_color(),
                    label=f"v_i,s = V_cost(pi_s){tag}")
        bottom.axhline(budget, color=line.get_color(), linestyle=":", label=f"budget{tag}")
    bottom.set_ylabel("discounted cost")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


@styled
def plot_figure2(records: Mapping[str, list], budget: float, points: int = 600,
                 report: str = "every-episode") -> Figure:
    """The paper's Figure 2: cumulative regret (log scale, so that no algorithm squashes the
    others) and the exact constraint (cost) value of the deployed policy against the episode.
    Line = mean over runs, band = 10%-90% of runs; on the right, every run that ever exceeds the
    budget is drawn thin, and each label counts the runs with a violation (a band can stay
    under the budget while some runs violate). Labels and colours come from the registry.
    ``budget``: one number, or the K budgets of tasks with K constraints (the right panel then
    shows each episode's largest cost minus its budget, feasible iff <= 0).

    ``report="authors"``: the records are :func:`safepce.theory.harness.authors_report` views (each
    run
    stopped before its first infeasible mixture, 0 afterwards); the labels count the stopped
    runs and the title says that the curves hide them."""
    from .algorithms.registry import REGISTRY

    budgets = np.atleast_1d(np.asarray(budget, dtype=np.float64))
    several = budgets.size > 1

    def cost_of(run):
        """The deployed cost; with K constraints the largest cost minus its budget."""
        return (run.cost_value - budgets).max(axis=1) if several else run.cost_value

    fig = new_figure(TEXT_WIDTH, 3.0)
    left, right = fig.subplots(1, 2)
    for key, runs in records.items():
        spec = REGISTRY.get(key)
        label, colour, style = (spec.label, spec.color, spec.linestyle) if spec else (
            key, None, "-")
        preset = runs[0].preset
        violating = sum(r.first_violation_episode is not None for r in runs)
        verb = "stopped unsafe" if report == "authors" else "violate"
        label = (f"{label} [{preset}]" if preset else label) + \
            f", {violating}/{len(runs)} runs {verb}"
        n_episodes = runs[0].reward_value.size
        index = np.unique(np.linspace(0, n_episodes - 1, points).astype(int))
        episodes = index + 1
        for ax, curves in ((left, np.stack([r.cumulative_regret[index] for r in runs])),
                           (right, np.stack([cost_of(r)[index] for r in runs]))):
            ax.plot(episodes, curves.mean(axis=0), color=colour, linestyle=style,
                    label=label if ax is left else None)
            ax.fill_between(episodes, np.quantile(curves, 0.1, axis=0),
                            np.quantile(curves, 0.9, axis=0), color=colour, alpha=0.2,
                            linewidth=0)
        for run in runs:
            if run.violated.any():
                # the exact cost of every deployed policy, episode by episode (no sub-sampling
                # can hide a short violation: the maximum over each bin is drawn)
                edges = np.linspace(0, n_episodes, points + 1).astype(int)
                peaks = np.maximum.reduceat(cost_of(run), edges[:-1])
                right.plot(edges[1:], peaks, color=colour, linestyle=style, linewidth=0.4,
                           alpha=0.6)
    right.axhline(0.0 if several else float(budgets[0]), color="0.45", linestyle=(0, (5, 2)),
                  linewidth=1, label="every budget" if several else f"budget {budgets[0]:g}")
    left.set_yscale("symlog", linthresh=1.0)      # log above 1, linear through 0
    left.set_xlabel("episode")
    left.set_ylabel("cumulative reward regret")
    left.set_title("regret (exact); line: mean, band: 10-90% of runs")
    right.set_xlabel("episode")
    right.set_ylabel("largest discounted cost\nminus its budget" if several else
                     "discounted cost of\nthe deployed policy")
    right.set_title("constraint value (exact); thin: each violating run")
    if report == "authors":
        fig.suptitle("As the authors' code records runs: a run stops before its first "
                     "infeasible mixture,\nand its stored history is 0 from there on (the "
                     "violations are not drawn)", fontsize="medium")
    fig.legend(loc="outside lower center", ncols=2)
    return fig
