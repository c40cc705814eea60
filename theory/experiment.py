"""The paper's experiment end to end (Ni & Kamgarpour 2026, arXiv:2601.21845, Section 6) on any
registered task family, and violation rates over many runs.

``reproduce`` trains with the family's defaults (for the gridworld, the experiment's: parameter
oracle, radius 0.005, pi_s = the optimal policy of the noise-0.4 task), then runs each test-time
algorithm of the registry (:mod:`safepce.theory.algorithms`) on the test tasks (the gridworld's ten
published ones; draws from D for other families) for K episodes, from the same pi_s, with common
random numbers across algorithms (task i uses the same seed for every algorithm). Every run is
named with its registry key and preset.
"""

from __future__ import annotations

import math
import tempfile
from concurrent.futures import as_completed
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from safepce.tabular import families
from safepce.tabular.distributions import PAPER_TEST_TASKS, TaskDistribution

from .algorithms.registry import REGISTRY, make_algorithm
from .harness import RunRecord, authors_report, run_test_phase
from .progress import keep_alive
from .results import clopper_pearson
from .settings import SettingsError, algorithm_delta, non_negative, positive, setting, validate
from .sweep import EngineError, ResultStore, engine_failures, make_executor, run_sweep
from .training import TrainingResult, make_coverage_oracle, make_safe_oracle, train

#: what `safepce reproduce` runs by default: the paper's six algorithms and the certified
#: Safe-PCE (safe-pce-certified, beyond the paper)
PAPER_ALGORITHMS = ("safe-pce", "pce", "safe-meta-rl", "dope-plus", "dope", "lb-sgd",
                    "safe-pce-certified")
#: how a run is recorded: every episode, or as the authors' loop stored it (harness.authors_report)
REPORTS = ("every-episode", "authors")

__all__ = ["PAPER_TEST_TASKS", "ExperimentSettings", "ViolationSettings", "reproduce",
           "violation_rates", "experiment_training", "experiment_family"]

def algorithm_keys() -> tuple[str, ...]:
    return tuple(REGISTRY)


def family_names() -> tuple[str, ...]:
    return tuple(name for name in families.FAMILIES if name != "file")


@dataclass(frozen=True)
class FamilySettings:
    """Which task family a command runs on, and its training phase (defaults: the family's)."""

    family: str = setting("gridworld", "registered task family", choices=family_names)
    family_file: str | None = setting(
        None, "a finite family saved by tabular.families.save_family (replaces --family)")
    radius: float | None = setting(
        None, "cover radius (noise units for the gridworld's parameter oracle, task distance "
              "otherwise); default: the family's (gridworld 0.005)", positive,
        "a positive number")
    delta: float = setting(0.05, "delta of Algorithm 1", algorithm_delta, "a number in (0, 1/3)")
    seed: int = setting(0, "root seed", non_negative, "a non-negative integer")
    size: int | None = setting(None, "gridworld side n (7, the paper's; n > 7 builds sparse n x n "
                                     "tasks, e.g. 50 for 2,500 states)",
                               lambda n: int(n) == n and n >= 4, "an integer >= 4")
    noise_model: str = setting(
        "code", "gridworld noise model: the authors' code's (the noise spread over the in-grid "
                "neighbours; every published number) or Section 6's text (a uniformly random "
                "action with probability the noise)", choices=families.NOISE_MODELS)

    def family_parameters(self) -> dict:
        """The settings passed to the family's factory (only those set)."""
        parameters = {} if self.size is None else {"size": int(self.size)}
        if self.noise_model != "code":
            parameters["noise_model"] = self.noise_model
        return parameters

    def validate(self):
        validate(self)
        if self.size is not None and (self.family_file or not family_takes(self.family,
                                                                             "size")):
            raise SettingsError(f"--size: the {self.family} family has no side length (families "
                                f"with one: {', '.join(families_taking('size'))})")
        if self.noise_model != "code":
            if self.family_file or not family_takes(self.family, "noise_model"):
                raise SettingsError(f"--noise-model {self.noise_model}: the {self.family} family "
                                    f"has one noise model (families with two: "
                                    f"{', '.join(families_taking('noise_model'))})")
            try:                          # the family itself says which sizes take it
                experiment_family(self)
            except ValueError as exc:
                raise SettingsError(f"--noise-model {self.noise_model}: {exc}") from None
        return self


@dataclass(frozen=True)
class PhaseSettings(FamilySettings):
    """A family plus test-phase runs of K episodes of H steps (H: the family's by default)."""

    episodes: int = setting(40_000, "episodes K per run", positive, "a positive integer")
    horizon: int | None = setting(None, "steps per episode H; default: the family's (gridworld "
                                        "600)", positive, "a positive integer")

    def resolved_horizon(self) -> int:
        return self.horizon or experiment_family(self)[1].horizon


@dataclass(frozen=True)
class ExperimentSettings(PhaseSettings):
    """Settings of ``reproduce`` (defaults: the published experiment)."""

    tasks: int = setting(10, "how many test tasks (the gridworld's published ten, or draws "
                             "from D)", lambda n: 1 <= n <= 10_000, "an integer in [1, 10000]")
    algorithms: tuple[str, ...] = setting(PAPER_ALGORITHMS, "test-time algorithms (registry "
                                          "keys)", choices=algorithm_keys)
    report: str = setting("every-episode", "how runs.csv, summary.json and figure2 record a run: "
                          "every episode's exact values, or as the authors' loop stored them "
                          "(a run stops before its first infeasible mixture, the rest is 0)",
                          choices=REPORTS)

    def validate(self) -> ExperimentSettings:
        FamilySettings.validate(self)
        published = families.family_spec(self.family).test_parameters
        if published is not None and self.family_file is None and self.tasks > len(published):
            raise SettingsError(f"--tasks: expected an integer in [1, {len(published)}] (the "
                                f"{self.family} family's published test tasks); got {self.tasks}")
        return self


@dataclass(frozen=True)
class ViolationSettings(PhaseSettings):
    """Settings of ``violations``: runs on test tasks drawn from D with fresh seeds."""

    runs: int = setting(1000, "runs per algorithm", positive, "a positive integer")
    algorithms: tuple[str, ...] = setting(("safe-pce", "safe-pce-theory", "pce"),
                                          "test-time algorithms (registry keys)",
                                          choices=algorithm_keys)


def family_takes(name: str, parameter: str) -> bool:
    """Whether the registered family ``name``'s factory takes ``parameter``."""
    return parameter in families.family_spec(name).parameters()


def families_taking(parameter: str) -> list[str]:
    return [name for name in family_names() if family_takes(name, parameter)]


@lru_cache(maxsize=8)
def _family(name: str, family_file: str | None, parameters: tuple = ()):
    if family_file is not None:
        return families.make("file", path=str(Path(family_file).resolve())), \
            families.family_spec("file")
    return families.make(name, **dict(parameters)), families.family_spec(name)


def experiment_family(settings: FamilySettings) -> tuple[TaskDistribution, families.FamilySpec]:
    """(D, its registry spec) of the settings' family (cached per process): the one resolver
    of every command; the parameters passed to the family's factory are the settings'
    ``family_parameters()``."""
    return _family(settings.family, settings.family_file,
                   tuple(sorted(settings.family_parameters().items())))


def experiment_training(settings: FamilySettings, progress: bool = False
                        ) -> tuple[TrainingResult, TaskDistribution]:
    """Algorithm 1 on the settings' family with its training defaults."""
    distribution, spec = experiment_family(settings)
    radius = spec.radius if settings.radius is None else settings.radius
    safe_oracle = make_safe_oracle(spec.safe_oracle, parameter=spec.safe_parameter)
    training = train(distribution, make_coverage_oracle(spec.oracle, radius), settings.delta,
                     seed=settings.seed, safe_oracle=safe_oracle, progress=progress)
    return training, distribution


def test_parameters(settings: ExperimentSettings) -> np.ndarray:
    """The test tasks of ``reproduce``: the family's published ones (with its default
    parameters), else ``settings.tasks`` draws from D (seeded by the root seed)."""
    distribution, spec = experiment_family(settings)
    if spec.test_parameters is not None and settings.family_file is None:
        return np.asarray(spec.test_parameters[:settings.tasks], dtype=np.float64)[:, None]
    return distribution.sample(settings.tasks, np.random.SeedSequence([settings.seed, 2]))


def run_seed(root: int, index: int) -> int:
    """The run seed of test task ``index`` (shared by all algorithms: common random numbers)."""
    return int(np.random.SeedSequence([root, index]).generate_state(1)[0])


def optimal_value(task) -> float:
    """V* of a test task (task units), NaN where no policy meets the budget."""
    from safepce import tabular
    try:
        return tabular.solve(task, backend="auto").reward_value
    except tabular.InfeasibleCMDPError:
        return math.nan


def summarise(key: str, records: list[RunRecord]) -> dict:
    """One flat record per algorithm (task units) for summary.json's ``results``."""
    final = np.array([r.cumulative_regret[-1] for r in records])
    return {
        "key": key,
        "algorithm": REGISTRY[key].cls.name,
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


def run_row(key: str, parameter_names, parameter, record: RunRecord) -> dict:
    """One row of runs.csv: numbers only, no timing (runs.csv is byte-identical across reruns
    and worker counts; timings live in summary.json). One ``task_<name>`` column per
    parameter coordinate."""
    events = record.log.get("events", [])
    names = (parameter_names,) if isinstance(parameter_names, str) else tuple(parameter_names)
    values = np.atleast_1d(np.asarray(parameter, dtype=np.float64))
    return {
        "key": key,
        "algorithm": REGISTRY[key].cls.name,
        "preset": record.preset,
        **{f"task_{name}": float(v) for name, v in zip(names, values, strict=True)},
        "seed": record.seed,
        "episodes": record.reward_value.size,
        "final_regret": float(record.cumulative_regret[-1]),
        "violations": int(np.count_nonzero(record.violated)),
        "max_cost_value": float(record.cost_value.max()),
        "constraint_regret": record.constraint_regret,
        "safe_only_episodes": int(np.count_nonzero(record.safe_only)),
        "candidates_tried": len(record.log.get("candidate_order", [])),
        "eliminations": sum(e.get("event") == "eliminate" for e in events),
        "reward_eliminations": sum(e.get("event") == "eliminate" and "reward" in e["test"]
                                   for e in events),
        "constraint_eliminations": sum(e.get("event") == "eliminate"
                                       and "constraint" in e["test"] for e in events),
        "stage_advances": sum(e.get("event") == "stage" for e in events),
        "first_violation_episode": record.first_violation_episode or "",
        "final_alpha": record.log.get("final_alpha", ""),
        "optimal_value": record.optimal_value,
    }


def reproduce_run(key: str, index: int, settings: ExperimentSettings, training: TrainingResult,
                  theta: np.ndarray, optimum: float) -> RunRecord:
    """One test-phase run of ``reproduce`` (a pure function of its arguments: any worker gives
    the same record)."""
    distribution, _ = experiment_family(settings)
    horizon = settings.resolved_horizon()
    algorithm = make_algorithm(key, training, distribution, horizon, settings.delta)
    return run_test_phase(algorithm, distribution.build(theta), settings.episodes, horizon,
                          seed=run_seed(settings.seed, index),
                          optimal_value=0.0 if math.isnan(optimum) else optimum)


def reproduce(settings: ExperimentSettings, progress: bool = True, workers: int = 1,
              store: Path | None = None, training: TrainingResult | None = None):
    """Train (unless ``training`` is given), then run every requested algorithm on the test
    tasks, on ``workers`` processes (1: in this process); the records do not depend on
    ``workers``. With a ``store`` folder every finished run is saved there as it completes and
    runs already there are read back instead of rerun, so an interrupted call resumes.

    Returns (training, distribution, {key: [RunRecord per task]}, rows of the per-run table);
    the records hold every episode, the rows follow ``settings.report`` (``"authors"``: each run
    as :func:`safepce.theory.harness.authors_report` stores it).
    """
    settings.validate()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SettingsError(f"--workers: expected a positive integer; got {workers!r}")
    if training is None:
        training, distribution = experiment_training(settings, progress=progress)
    else:
        distribution, _ = experiment_family(settings)
    thetas = test_parameters(settings)
    optima = [optimal_value(distribution.build(theta)) for theta in tqdm(
        thetas, desc="test tasks' optima V*", disable=not progress)]
    jobs = [(key, i) for key in settings.algorithms for i in range(len(thetas))]
    done: dict[tuple[str, int], RunRecord] = {}
    if store is not None:
        Path(store).mkdir(parents=True, exist_ok=True)
        for key, i in jobs:
            path = Path(store) / f"{key}-{i:04d}.npz"
            if path.exists():
                done[key, i] = RunRecord.load(path)

    def finish(job, record):
        done[job] = record
        if store is not None:
            record.save(Path(store) / f"{job[0]}-{job[1]:04d}.npz")
        bar.update(1)
        bar.set_postfix(algorithm=job[0])

    pending = [job for job in jobs if job not in done]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc="test phase", unit="run",
               disable=not progress)
    with keep_alive(bar):
        if workers == 1:
            for key, i in pending:
                finish((key, i), reproduce_run(key, i, settings, training, thetas[i], optima[i]))
        elif pending:
            with make_executor("local", workers, jobs=len(pending)) as executor:
                # the slowest algorithms go first so the pool drains evenly
                futures = {executor.submit(reproduce_run, key, i, settings, training, thetas[i],
                                           optima[i]): (key, i) for key, i in reversed(pending)}
                try:
                    for future in as_completed(futures):
                        finish(futures[future], future.result())
                except engine_failures() as exc:
                    raise EngineError(f"a worker process running the test phase failed "
                                      f"({type(exc).__name__}: {exc}); {len(done)} of {len(jobs)} "
                                      "runs are stored") from None
    bar.close()
    records = {key: [done[key, i] for i in range(len(thetas))] for key in settings.algorithms}
    view = authors_report if settings.report == "authors" else (lambda record: record)
    rows = [run_row(key, distribution.parameter_names, thetas[i], view(done[key, i]))
            for key, i in jobs]
    return training, distribution, records, rows


def settings_dict(settings: ExperimentSettings) -> dict:
    """The settings as recorded in summary.json: every field, the algorithms' registry specs
    (class, preset and every preset number) and the test tasks."""
    data = asdict(settings)
    data["horizon"] = settings.resolved_horizon()
    data["algorithms"] = {key: REGISTRY[key].describe() for key in settings.algorithms}
    tasks = test_parameters(settings)
    data["test_tasks"] = (tasks[:, 0] if tasks.shape[1] == 1 else tasks).tolist()
    return data


# --- violation rates over many runs -----------------------------------------------------------


@lru_cache(maxsize=4)
def _load_training(path: str) -> TrainingResult:
    return TrainingResult.load(path)


def item_family(item: dict) -> FamilySettings:
    """The family of one sweep item of :func:`violation_items`."""
    return FamilySettings(family=item["family"], family_file=item["family_file"],
                          size=item.get("size"), noise_model=item.get("noise_model", "code"))


def violation_run_chunk(settings_list: list[dict]) -> list[dict]:
    """Sweep worker: one record (settings, seed, metrics) per violation run."""
    from safepce import tabular
    records = []
    for item in settings_list:
        training = _load_training(item["training_path"])
        distribution, _ = experiment_family(item_family(item))
        task = distribution.build(np.atleast_1d(item["task_parameter"]))
        # above noise ~0.43 no gridworld policy is feasible: V* is undefined there
        optimum = optimal_value(task)
        algorithm = make_algorithm(item["algorithm"], training, distribution, item["horizon"],
                                   item["delta"])
        record = run_test_phase(algorithm, task, item["episodes"], item["horizon"],
                                seed=item["seed"],
                                optimal_value=0.0 if math.isnan(optimum) else optimum)
        # Assumption 3.3 on this task: pi_s itself is feasible
        holds = tabular.evaluate(task, training.safe_policy).feasible
        records.append({
            "settings": {k: v for k, v in item.items() if k != "training_path"},
            "seed": item["seed"],
            "metrics": {"violated": bool(record.violated.any()),
                        "assumption_holds": bool(holds),
                        "flags": " ".join(record.log.get("flags", [])),
                        "uncertified_episodes": int(record.log.get("uncertified_episodes", 0)),
                        "max_cost_value": float(record.cost_value.max()),
                        "violating_episodes": int(np.count_nonzero(record.violated)),
                        "final_regret": float(record.cumulative_regret[-1])},
        })
    return records


def violation_items(training_path, settings: ViolationSettings) -> list[tuple[str, dict]]:
    """One sweep item per (test task, algorithm); task i's parameter and seed come from
    ``SeedSequence(settings.seed + 1)`` alone, so every engine and worker count gives the same
    runs."""
    distribution, _ = experiment_family(settings)
    task_seed, run_seeds = np.random.SeedSequence(settings.seed + 1).spawn(2)
    thetas = distribution.sample(settings.runs, task_seed)
    # one number for a 1-D family (as stores written before d-D families keep), else a list
    thetas = thetas[:, 0].tolist() if thetas.shape[1] == 1 else thetas.tolist()
    seeds = run_seeds.generate_state(settings.runs, np.uint32)
    family_file = None if settings.family_file is None else str(
        Path(settings.family_file).resolve())
    return [(f"{i:07d}-{key}", {"index": i, "algorithm": key,
                                "task_parameter": thetas[i], "seed": int(seeds[i]),
                                "episodes": int(settings.episodes),
                                "horizon": int(settings.resolved_horizon()),
                                "delta": float(settings.delta), "family": settings.family,
                                "family_file": family_file, "training_path": str(training_path),
                                # only when given, so that earlier stores keep their keys
                                **({} if settings.size is None else {"size": settings.size}),
                                **({} if settings.noise_model == "code"
                                   else {"noise_model": settings.noise_model})})
            for i in range(settings.runs) for key in settings.algorithms]


def violation_rates(training_path, settings: ViolationSettings, workers: int = 2,
                    progress: bool = True, engine: str = "local", scheduler: str | None = None,
                    store: ResultStore | None = None) -> dict:
    """Fraction of runs with any violating deployed policy, per algorithm, over
    ``settings.runs`` test tasks drawn from D with fresh seeds, with 95% Clopper-Pearson
    intervals.

    Runs go through :func:`safepce.theory.sweep.run_sweep` (process pool or Dask); with a ``store``
    a
    killed sweep resumes where it stopped. The numbers do not depend on engine or workers.
    Returns {"per_algorithm": [flat record per algorithm], "runs": [row per run]}.
    """
    settings.validate()
    items = violation_items(training_path, settings)
    distribution, _ = experiment_family(settings)
    names = distribution.parameter_names
    name = names[0]
    with ExitStack() as stack:
        if store is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            store = ResultStore(folder, {"kind": "violations", "runs": settings.runs})
        executor = stack.enter_context(make_executor(engine, workers, scheduler,
                                                     jobs=len(items)))
        records = run_sweep(items, violation_run_chunk, store, executor, progress=progress,
                            description="violation runs")
    rows = [{"key": r["settings"]["algorithm"],
             "algorithm": REGISTRY[r["settings"]["algorithm"]].cls.name,
             "preset": REGISTRY[r["settings"]["algorithm"]].preset_name,
             **{f"task_{n}": v for n, v in zip(names, np.atleast_1d(
                 r["settings"]["task_parameter"]).tolist(), strict=True)},
             "seed": r["seed"], **r["metrics"]}
            for r in records]
    per_algorithm = []
    for key in settings.algorithms:
        mine = [r for r in rows if r["key"] == key]
        violating = sum(r["violated"] for r in mine)
        low, high = clopper_pearson(violating, len(mine))
        violating_parameters = [r[f"task_{name}"] for r in mine if r["violated"]]
        # the runs where Assumption 3.3 holds (pi_s feasible), counted separately
        held = [r for r in mine if r.get("assumption_holds", True)]
        held_violating = sum(r["violated"] for r in held)
        held_low, held_high = clopper_pearson(held_violating, len(held)) if held else (
            math.nan, math.nan)
        per_algorithm.append({
            "key": key, "algorithm": REGISTRY[key].cls.name,
            "preset": REGISTRY[key].preset_name,
            "runs": len(mine), "runs_with_violation": violating,
            "fraction": violating / len(mine), "clopper_pearson_low": low,
            "clopper_pearson_high": high,
            "violating_episodes": int(sum(r["violating_episodes"] for r in mine)),
            "mean_final_regret": float(np.mean([r["final_regret"] for r in mine])),
            "max_cost_value": float(max(r["max_cost_value"] for r in mine)),
            f"violating_{name}_min": float(min(violating_parameters, default=math.nan)),
            "runs_assumption_holds": len(held),
            "runs_with_violation_assumption_holds": held_violating,
            "clopper_pearson_high_assumption_holds": held_high,
            "clopper_pearson_low_assumption_holds": held_low,
        })
    return {"per_algorithm": per_algorithm, "runs": rows}
