"""Figures of the paper's gridworld experiment (PAPER.md section 7)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from tabular.families import (  # noqa: E402
    ACTION_DELTAS,
    GOAL_STATE,
    GRID_SIZE,
    HAZARD_STATES,
    coordinates,
)


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out, write and close a figure (every figure of the toolkit ends here)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


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


def plot_figure1(policies: Mapping[str, np.ndarray], path: Path) -> Path:
    """Save the paper's Figure 1: optimal policies side by side, one panel per entry."""
    fig, axes = plt.subplots(1, len(policies), figsize=(4.2 * len(policies), 4.4), squeeze=False)
    for ax, (title, policy) in zip(axes[0], policies.items(), strict=True):
        draw_gridworld_policy(ax, policy, title)
    return save_figure(fig, path, dpi=130)


def plot_training(result, distribution, path: Path) -> Path:
    """The training phase at a glance: D's density with the cover's balls, and the values of
    each cover policy (u_i, v_i) and of pi_s on each cover task (u_{i,s}, v_{i,s}), task units."""
    order = np.argsort(result.cover_parameters[:, 0])
    centres = result.cover_parameters[order, 0]
    radius = result.settings["coverage"]["radius"]
    if result.settings["coverage"]["oracle"] == "distance" and distribution.distance_scale:
        radius = radius / distribution.distance_scale
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    grid = np.linspace(centres.min() - 0.08, centres.max() + 0.08, 400)
    density = np.gradient(distribution.cdf(grid), grid)
    top.plot(grid, density, color="0.3")
    for c in centres:
        top.axvspan(c - radius, c + radius, color="#5dade2", alpha=0.35)
    top.set_ylabel("density of D")
    top.set_title(f"cover of {result.cover_size} tasks (balls of radius {radius:g} in noise)")
    middle.plot(centres, result.reward_values[order], "o-", label="u_i = V_r(pi_i) on M_i")
    middle.plot(centres, result.safe_reward_values[order], "s--", label="u_i,s = V_r(pi_s) on M_i")
    middle.set_ylabel("reward value")
    middle.legend(fontsize=8)
    bottom.plot(centres, result.cost_values[order], "o-", label="v_i = V_cost(pi_i)")
    bottom.plot(centres, result.safe_cost_values[order], "s--", label="v_i,s = V_cost(pi_s)")
    bottom.axhline(distribution.budget if hasattr(distribution, "budget") else np.nan,
                   color="#c0392b", linestyle=":", label="budget")
    bottom.set_ylabel("discounted cost")
    bottom.set_xlabel("noise")
    bottom.legend(fontsize=8)
    return save_figure(fig, path)


ALGORITHM_STYLE = {
    "safe-pce": ("Safe-PCE", "#1f77b4"),
    "pce": ("PCE (unsafe)", "#d62728"),
    "safe-pce-theory": ("Safe-PCE, theory constants", "#17becf"),
    "pce-theory": ("PCE, theory constants", "#ff7f0e"),
    "safe-meta-rl": ("Safe Meta-RL", "#2ca02c"),
    "dope-plus": ("DOPE+", "#9467bd"),
    "dope": ("DOPE", "#8c564b"),
    "lb-sgd": ("LB-SGD", "#7f7f7f"),
}


def plot_figure2(records: Mapping[str, list], budget: float, path: Path, points: int = 600
                 ) -> Path:
    """The paper's Figure 2: cumulative regret and the exact constraint (cost) value of the
    deployed policy against the episode; mean over runs with 10%-90% quantile bands."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for key, runs in records.items():
        label, colour = ALGORITHM_STYLE.get(key, (key, None))
        preset = runs[0].preset
        label = f"{label} [{preset}]" if preset else label
        n_episodes = runs[0].reward_value.size
        index = np.unique(np.linspace(0, n_episodes - 1, points).astype(int))
        episodes = index + 1
        for ax, curves in ((left, np.stack([r.cumulative_regret[index] for r in runs])),
                           (right, np.stack([r.cost_value[index] for r in runs]))):
            ax.plot(episodes, curves.mean(axis=0), color=colour, label=label, linewidth=1.6)
            ax.fill_between(episodes, np.quantile(curves, 0.1, axis=0),
                            np.quantile(curves, 0.9, axis=0), color=colour, alpha=0.2,
                            linewidth=0)
    right.axhline(budget, color="black", linestyle="--", linewidth=1, label=f"budget {budget:g}")
    left.set_xlabel("episode")
    left.set_ylabel("cumulative reward regret")
    left.set_title("regret (exact values)")
    right.set_xlabel("episode")
    right.set_ylabel("discounted cost of the deployed policy")
    right.set_title("constraint value (exact)")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    return save_figure(fig, path)
