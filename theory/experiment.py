"""The paper's gridworld experiment end to end (PAPER.md sections 7 and 8), and violation rates.

``reproduce`` trains with the experiment's settings (parameter oracle, radius 0.005, pi_s = the
optimal policy of the noise-0.4 task), then runs each test-time algorithm on the ten published
test tasks for K episodes of 600 steps from the same pi_s, with common random numbers across
algorithms (task i uses the same seed for every algorithm). Each algorithm is named with its
constant preset; summaries say which preset every run used.
"""

from __future__ import annotations

import math
import tempfile
from concurrent.futures import as_completed
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import binomtest
from tqdm.auto import tqdm

import tabular
from tabular.distributions import GridworldNoise

from .dope import DOPE, DOPEPlus
from .harness import RunRecord, run_test_phase
from .lb_sgd import LBSGD
from .oracles import DesignatedSafePolicy, ParameterCoverage
from .safe_meta_rl import SafeMetaRL
from .safe_pce import PCE, SafePCE
from .sweep import ResultStore, make_executor, run_sweep
from .training import TrainingResult, train

#: the ten test tasks of the published Figure 2 (PAPER.md section 7)
PAPER_TEST_TASKS = (0.33994760, 0.25363799, 0.31864008, 0.30796535, 0.33609112, 0.33084822,
                    0.31335413, 0.30405411, 0.34453611, 0.26760585)

#: algorithm key -> (class, preset); keys are those of summary.json
ALGORITHMS = {
    "safe-pce": (SafePCE, "paper-experiment"),
    "pce": (PCE, "paper-experiment"),
    "safe-pce-theory": (SafePCE, "theory"),
    "pce-theory": (PCE, "theory"),
    "safe-pce-scaled": (SafePCE, "scaled"),
    "safe-meta-rl": (SafeMetaRL, "paper-experiment"),
    "dope-plus": (DOPEPlus, "paper-experiment"),
    "dope": (DOPE, "paper-experiment"),
    "lb-sgd": (LBSGD, "paper-experiment"),
    "dope-plus-theory": (DOPEPlus, "theory"),
}
#: the baselines take the training tasks (the family's static structure) instead of its units
BASELINES = (SafeMetaRL, DOPE, LBSGD)
#: what `safepce reproduce` runs by default: the paper's six algorithms
PAPER_ALGORITHMS = ("safe-pce", "pce", "safe-meta-rl", "dope-plus", "dope", "lb-sgd")
#: the algorithms of the paper's Figure 2 and of its appendix figure
FIGURE_2 = ("safe-pce", "safe-meta-rl", "dope-plus", "lb-sgd")
FIGURE_2_APPENDIX = ("safe-pce", "pce", "lb-sgd", "dope", "dope-plus")


class ExperimentInputError(ValueError):
    """An experiment setting is out of range."""


@dataclass(frozen=True)
class ExperimentSettings:
    """Settings of the gridworld experiment (defaults: the published ones)."""

    episodes: int = 40_000
    tasks: int = 10
    horizon: int = 600
    radius: float = 0.005
    delta: float = 0.05
    safe_parameter: float = 0.4
    seed: int = 0
    algorithms: tuple[str, ...] = PAPER_ALGORITHMS
    scale: float = 0.01

    def validate(self) -> ExperimentSettings:
        for name in ("episodes", "horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExperimentInputError(f"--{name}: expected a positive integer; got {value!r}")
        if not 1 <= self.tasks <= len(PAPER_TEST_TASKS):
            raise ExperimentInputError(
                f"--tasks: expected an integer in [1, {len(PAPER_TEST_TASKS)}]; got {self.tasks}")
        if not self.radius > 0:
            raise ExperimentInputError(f"--radius: expected a positive number; got {self.radius}")
        if not 0 < self.delta < 1 / 3:
            raise ExperimentInputError(f"--delta: expected a number in (0, 1/3); got {self.delta}")
        if not 0 < self.scale < 1:
            raise ExperimentInputError(f"--scale: expected a factor in (0, 1); got {self.scale}")
        if self.seed < 0:
            raise ExperimentInputError(f"--seed: expected a non-negative integer; got {self.seed}")
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown or not self.algorithms:
            raise ExperimentInputError(
                f"--algorithms: expected names among {tuple(ALGORITHMS)}; got {unknown or '[]'}")
        return self


def experiment_training(settings: ExperimentSettings, progress: bool = False
                        ) -> tuple[TrainingResult, GridworldNoise]:
    distribution = GridworldNoise()
    training = train(distribution, ParameterCoverage(settings.radius), settings.delta,
                     seed=settings.seed, safe_oracle=DesignatedSafePolicy(settings.safe_parameter),
                     progress=progress)
    return training, distribution


def make_algorithm(key: str, training: TrainingResult, distribution, horizon: int,
                   delta: float, scale: float = 1.0):
    """Instantiate an algorithm by key; the theory (and scaled) preset's eps is the cover radius
    in task distance (radius x the family's exact distance scale for the parameter oracle)."""
    cls, preset = ALGORITHMS[key]
    if issubclass(cls, BASELINES):
        return cls(training, training_tasks(training, distribution), horizon, preset=preset)
    units = distribution.build(training.cover_parameters[0]).utility_form
    if preset in ("theory", "scaled"):
        coverage = training.settings["coverage"]
        eps = coverage["radius"] * (distribution.distance_scale
                                    if coverage["oracle"] == "parameter" else 1.0)
        return cls(training, units, horizon, preset=preset, eps=eps, delta=delta,
                   scale=scale if preset == "scaled" else 1.0)
    return cls(training, units, horizon, preset=preset)


def training_tasks(training: TrainingResult, distribution) -> list:
    """The cover's tasks, rebuilt from their parameters (what a baseline knows of the family)."""
    return [distribution.build(p) for p in training.cover_parameters]


def run_seed(root: int, index: int) -> int:
    """The run seed of test task ``index`` (shared by all algorithms: common random numbers)."""
    return int(np.random.SeedSequence([root, index]).generate_state(1)[0])


def summarise(records: list[RunRecord]) -> dict:
    """Per-algorithm numbers of summary.json (task units)."""
    final = np.array([r.cumulative_regret[-1] for r in records])
    return {
        "preset": records[0].preset,
        "runs": len(records),
        "final_regret_mean": float(final.mean()),
        "final_regret_q10": float(np.quantile(final, 0.1)),
        "final_regret_q90": float(np.quantile(final, 0.9)),
        "violations": int(sum(np.count_nonzero(r.violated) for r in records)),
        "runs_with_violation": int(sum(bool(r.violated.any()) for r in records)),
        "max_cost_value": float(max(r.cost_value.max() for r in records)),
        "constraint_regret_mean": float(np.mean([r.constraint_regret for r in records])),
        "safe_only_episodes_mean": float(np.mean([np.count_nonzero(r.safe_only)
                                                  for r in records])),
    }


def run_row(key: str, noise: float, record: RunRecord) -> dict:
    events = record.log.get("events", [])
    return {
        "algorithm": key,
        "preset": record.preset,
        "task_noise": noise,
        "seed": record.seed,
        "episodes": record.reward_value.size,
        "final_regret": float(record.cumulative_regret[-1]),
        "violations": int(np.count_nonzero(record.violated)),
        "max_cost_value": float(record.cost_value.max()),
        "constraint_regret": record.constraint_regret,
        "safe_only_episodes": int(np.count_nonzero(record.safe_only)),
        "eliminations": sum(e.get("event") == "eliminate" for e in events),
        "final_alpha": record.log.get("final_alpha", ""),
        "optimal_value": record.optimal_value,
        "wall_seconds": record.wall_seconds,
    }


def reproduce_run(key: str, index: int, settings: ExperimentSettings, training: TrainingResult,
                  optimum: float) -> RunRecord:
    """One test-phase run of ``reproduce`` (a pure function of its arguments: any worker gives
    the same record)."""
    distribution = GridworldNoise()
    algorithm = make_algorithm(key, training, distribution, settings.horizon, settings.delta,
                               settings.scale)
    return run_test_phase(algorithm, tabular.gridworld(PAPER_TEST_TASKS[index]),
                          settings.episodes, settings.horizon, seed=run_seed(settings.seed, index),
                          optimal_value=optimum)


def reproduce(settings: ExperimentSettings, progress: bool = True, workers: int = 1):
    """Train, then run every requested algorithm on the first ``settings.tasks`` test tasks,
    on ``workers`` processes (1: in this process); the records do not depend on ``workers``.

    Returns (training, distribution, {key: [RunRecord per task]}, rows of the per-run table).
    """
    settings.validate()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExperimentInputError(f"--workers: expected a positive integer; got {workers!r}")
    training, distribution = experiment_training(settings, progress=progress)
    noises = PAPER_TEST_TASKS[:settings.tasks]
    optima = [tabular.solve(tabular.gridworld(p), backend="highspy").reward_value
              for p in noises]
    jobs = [(key, i) for key in settings.algorithms for i in range(len(noises))]
    done: dict[tuple[str, int], RunRecord] = {}
    bar = tqdm(total=len(jobs), desc="test phase", unit="run", disable=not progress)
    if workers == 1:
        for key, i in jobs:
            done[key, i] = reproduce_run(key, i, settings, training, optima[i])
            bar.update(1)
            bar.set_postfix(algorithm=key)
    else:
        with make_executor("local", workers) as executor:
            # the slowest algorithms go first so the pool drains evenly
            futures = {executor.submit(reproduce_run, key, i, settings, training, optima[i]):
                       (key, i) for key, i in reversed(jobs)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update(1)
                bar.set_postfix(algorithm=futures[future][0])
    bar.close()
    records = {key: [done[key, i] for i in range(len(noises))] for key in settings.algorithms}
    rows = [run_row(key, noises[i], done[key, i]) for key, i in jobs]
    return training, distribution, records, rows


# --- violation rates over many runs -----------------------------------------------------------


@lru_cache(maxsize=4)
def _load_training(path: str) -> TrainingResult:
    return TrainingResult.load(path)


def violation_run_chunk(settings_list: list[dict]) -> list[dict]:
    """Sweep worker: one record (settings, seed, metrics, versions) per violation run."""
    distribution = GridworldNoise()
    records = []
    for settings in settings_list:
        training = _load_training(settings["training_path"])
        task = tabular.gridworld(settings["task_noise"])
        try:
            optimum = tabular.solve(task, backend="highspy").reward_value
        except tabular.InfeasibleCMDPError:
            optimum = math.nan     # above noise ~0.43 no policy is feasible (PAPER.md sec. 7)
        algorithm = make_algorithm(settings["algorithm"], training, distribution,
                                   settings["horizon"], settings["delta"])
        record = run_test_phase(algorithm, task, settings["episodes"], settings["horizon"],
                                seed=settings["seed"],
                                optimal_value=0.0 if math.isnan(optimum) else optimum)
        records.append({
            "settings": {k: v for k, v in settings.items() if k != "training_path"},
            "seed": settings["seed"],
            "metrics": {"violated": bool(record.violated.any()),
                        "max_cost_value": float(record.cost_value.max()),
                        "violating_episodes": int(np.count_nonzero(record.violated)),
                        "final_regret": float(record.cumulative_regret[-1])},
            "versions": _package_versions(),
        })
    return records


def _package_versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("safepce", "numpy", "numba")}


def violation_items(training_path, keys, n_runs: int, episodes: int, horizon: int, delta: float,
                    seed: int) -> list[tuple[str, dict]]:
    """One sweep item per (test task, algorithm); task i's noise and seed come from
    ``SeedSequence(seed)`` alone, so every engine and worker count gives the same runs."""
    task_seed, run_seeds = np.random.SeedSequence(seed).spawn(2)
    noises = GridworldNoise().sample(n_runs, task_seed)[:, 0]
    seeds = run_seeds.generate_state(n_runs, np.uint32)
    return [(f"{i:07d}-{key}", {"index": i, "algorithm": key, "task_noise": float(noises[i]),
                                "seed": int(seeds[i]), "episodes": int(episodes),
                                "horizon": int(horizon), "delta": float(delta),
                                "training_path": str(training_path)})
            for i in range(n_runs) for key in keys]


def violation_rates(training_path, keys, n_runs: int, episodes: int, horizon: int, delta: float,
                    seed: int, workers: int = 2, progress: bool = True, engine: str = "local",
                    scheduler: str | None = None, store: ResultStore | None = None) -> dict:
    """Fraction of runs with any violating deployed policy, per algorithm, over ``n_runs`` test
    tasks drawn from D with fresh seeds, with 95% Clopper-Pearson intervals.

    Runs go through :func:`theory.sweep.run_sweep` (process pool or Dask); with a ``store`` a
    killed sweep resumes where it stopped. The numbers do not depend on engine or workers.
    """
    items = violation_items(training_path, keys, n_runs, episodes, horizon, delta, seed)
    with ExitStack() as stack:
        if store is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            store = ResultStore(folder, {"kind": "violations", "runs": n_runs})
        executor = stack.enter_context(make_executor(engine, workers, scheduler))
        records = run_sweep(items, violation_run_chunk, store, executor, progress=progress,
                            description="violation runs")
    rows = [{"algorithm": r["settings"]["algorithm"], "task_noise": r["settings"]["task_noise"],
             "seed": r["seed"], **r["metrics"]} for r in records]
    summary = {}
    for key in keys:
        mine = [r for r in rows if r["algorithm"] == key]
        violating = sum(r["violated"] for r in mine)
        # Clopper-Pearson (exact binomial) interval
        interval = binomtest(violating, len(mine)).proportion_ci(0.95, method="exact")
        summary[key] = {
            "runs": len(mine), "runs_with_violation": violating,
            "fraction": violating / len(mine),
            "clopper_pearson_95": [float(interval.low), float(interval.high)],
            "violating_episodes": int(sum(r["violating_episodes"] for r in mine)),
            "max_cost_value": float(max(r["max_cost_value"] for r in mine)),
            "violating_noise_min": float(min((r["task_noise"] for r in mine if r["violated"]),
                                             default=math.nan)),
            "tasks_above_0.4": int(sum(r["task_noise"] > 0.4 for r in mine)),
        }
    return {"per_algorithm": summary, "runs": rows}


def settings_dict(settings: ExperimentSettings) -> dict:
    data = asdict(settings)
    data["algorithms"] = {key: {"class": ALGORITHMS[key][0].__name__,
                                "preset": ALGORITHMS[key][1]} for key in settings.algorithms}
    data["test_tasks"] = list(PAPER_TEST_TASKS[:settings.tasks])
    return data
