"""Figures for readers (issue 27, item 4): no text cut at the figure's edge or drawn over another
text, and algorithms told apart by colour under deuteranopia and by line style."""

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.text import Text

from safepce import tabular
from safepce.bounds.sweeps import plot_violation_rates, plot_violation_vs_delta
from safepce.tabular import families
from safepce.theory.algorithms.registry import REGISTRY
from safepce.theory.experiment import PAPER_ALGORITHMS
from safepce.theory.figures import plot_figure1, plot_figure2, plot_training
from safepce.theory.harness import RunRecord, authors_report
from safepce.theory.training import TrainingResult


def _hidden_tick_labels(fig) -> set[int]:
    """ids of tick-label texts whose tick lies outside its axis's view (not drawn)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            span = high - low
            for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
                for tick in ticks:
                    loc = tick.get_loc()
                    if loc is None or not low - 1e-9 * span <= loc <= high + 1e-9 * span:
                        hidden.update({id(tick.label1), id(tick.label2)})
    return hidden


def _texts(fig):
    """(text artist, its window extent) of every drawn, non-empty text."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    hidden = _hidden_tick_labels(fig)
    return [(t, t.get_window_extent(renderer)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def problems(fig) -> list[str]:
    """Texts reaching outside the figure (1 px tolerance), and titles or suptitles that overlap
    an axis label."""
    texts = _texts(fig)
    box = fig.bbox
    found = [f"clipped: {t.get_text()!r}" for t, extent in texts
             if extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1
             or extent.y1 > box.y1 + 1]
    titles = [(t, e) for t, e in texts if t is getattr(fig, "_suptitle", None)
              or any(t is ax.title for ax in fig.axes)]
    labels = [(t, e) for t, e in texts if any(t is ax.xaxis.label or t is ax.yaxis.label
                                              for ax in fig.axes)]
    for (title, a), (label, b) in itertools.product(titles, labels):
        if a.overlaps(b):
            found.append(f"overlap: {title.get_text()!r} and {label.get_text()!r}")
    return found


def _records(key, n_runs=3, n_episodes=200, violate=False):
    rng = np.random.default_rng(hash(key) % 2**32)
    out = []
    for seed in range(n_runs):
        cost = 1.5 - rng.uniform(0, 0.3, n_episodes)
        if violate:
            cost[50:60] = 1.6
        out.append(RunRecord(algorithm=key, preset=REGISTRY[key].preset_name,
                             optimal_value=60.0, budget=1.5,
                             reward_value=60 - rng.uniform(0, 20, n_episodes), cost_value=cost,
                             safe_only=np.zeros(n_episodes, bool), horizon=600, seed=seed,
                             wall_seconds=0.0))
    return out


def _figures():
    task = tabular.gridworld(0.1)
    yield "figure1", plot_figure1({"noise 0.1": tabular.solve(task).policy,
                                   "noise 0.3": tabular.solve(tabular.gridworld(0.3)).policy})
    records = {key: _records(key, violate=key == "pce") for key in PAPER_ALGORITHMS}
    yield "figure2", plot_figure2(records, 1.5)
    yield "figure2_as_published", plot_figure2(
        {k: [authors_report(r) for r in v] for k, v in records.items()}, 1.5, report="authors")
    two = [RunRecord(algorithm="x", preset="certified", optimal_value=60.0, budget=[1.5, 3.0],
                     reward_value=np.full(200, 50.0),
                     cost_value=np.column_stack([np.full(200, 1.4), np.r_[np.full(100, 2.9),
                                                                           np.full(100, 3.1)]]),
                     safe_only=np.zeros(200, bool), horizon=600, seed=0, wall_seconds=0.0)]
    yield "figure2 two constraints", plot_figure2({"safe-pce-certified": two}, [1.5, 3.0])
    yield "violations", plot_violation_rates([
        {"key": key, "preset": REGISTRY[key].preset_name, "fraction": 0.1,
         "clopper_pearson_low": 0.05, "clopper_pearson_high": 0.2, "runs_with_violation": 100,
         "runs": 1000} for key in REGISTRY])
    yield "violation_vs_delta", plot_violation_vs_delta([
        {"key": key, "preset": REGISTRY[key].preset_name, "delta": delta, "fraction": 0.2,
         "low": 0.1, "high": 0.3} for key in ("safe-pce", "safe-pce-theory")
        for delta in (0.01, 0.05, 0.1)])
    for name, parameters in (("gridworld", [[0.28], [0.3], [0.32]]),
                             ("gridworld-slip-wind", [[0.24, 0.03], [0.26, 0.05], [0.3, 0.04]])):
        family = families.make(name)
        tasks = [family.build(p) for p in parameters]
        policy = tabular.solve(tasks[0]).policy
        values = tabular.evaluate_batch(tasks, policy[None])
        n = len(tasks)
        training = TrainingResult(
            cover_parameters=np.array(parameters), policies=np.stack([policy] * n),
            reward_values=values.reward_value[:, 0], cost_values=values.cost_value[:, 0],
            safe_policy=policy, safe_reward_values=values.reward_value[:, 0],
            safe_cost_values=values.cost_value[:, 0], safe_margin=np.zeros(n), rounds=[],
            settings={"coverage": {"oracle": "parameter", "radius": 0.01}})
        yield f"training {name}", plot_training(training, family)


FIGURES = dict(_figures())


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_no_text_is_cut_or_covered(name):
    assert problems(FIGURES[name]) == []


# --- colours and line styles ------------------------------------------------------------------

#: Machado, Oliveira & Fernandes (2009), deuteranopia at severity 1, on linear RGB
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968],
                         [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])


def deuteranope(colour) -> np.ndarray:
    """sRGB of ``colour`` as a deuteranope sees it (simulated)."""
    rgb = np.array(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055)**2.4)
    seen = np.clip(DEUTERANOPIA @ linear, 0, 1)
    return np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen**(1 / 2.4) - 0.055)


def test_the_papers_algorithms_differ_in_colour_for_a_deuteranope():
    """The seven algorithms of the paper's figure (and ours) pairwise at least 0.2 apart in
    simulated deuteranope sRGB (Euclidean). The earlier palette (matplotlib's tab10: Safe-PCE
    #1f77b4, DOPE+ #9467bd) put those two 0.12 apart."""
    seen = {key: deuteranope(REGISTRY[key].color) for key in PAPER_ALGORITHMS}
    for a, b in itertools.combinations(PAPER_ALGORITHMS, 2):
        assert np.linalg.norm(seen[a] - seen[b]) >= 0.2, (a, b)


def test_every_algorithm_has_its_own_colour_and_line_style():
    pairs = [(spec.color, spec.linestyle) for spec in REGISTRY.values()]
    assert len(set(pairs)) == len(pairs)
