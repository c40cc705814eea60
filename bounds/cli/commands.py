"""The runners of every ``safepce`` command. Each takes its settings dataclass (what it computes)
and a :class:`RunSettings` (where and how it runs), writes one output folder in the format of
:mod:`safepce.theory.results` (summary.json, a per-run or per-item table, figures as PNG and PDF)
and
returns the exit code."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from safepce import tabular
from safepce.tabular import families
from safepce.theory import results
from safepce.theory.algorithms.registry import FIGURES, figure_keys
from safepce.theory.experiment import (
    REPORTS,
    ExperimentSettings,
    FamilySettings,
    ViolationSettings,
    experiment_family,
    experiment_training,
    reproduce,
    settings_dict,
    summarise,
    violation_rates,
)
from safepce.theory.figures import plot_figure1, plot_figure2, plot_training, save_figure
from safepce.theory.harness import authors_report
from safepce.theory.settings import (
    SettingsError,
    discount,
    non_negative,
    positive,
    probability,
    setting,
    validate,
)
from safepce.theory.sweep import check_scheduler
from safepce.theory.training import (
    TrainingResult,
    check_lemma_3_5,
    make_coverage_oracle,
    make_safe_oracle,
    train,
)

from ..covering import covering_number
from .flags import RunSettings, UsageError, take_output

#: log entries that describe one run rather than the algorithm's settings
RUN_SPECIFIC_LOG = ("events", "candidate_order", "final_alpha", "final_candidate", "iterations",
                    "updates", "plans_tried", "pi_s_alone_episodes",
                    "pi_s_certified_infeasible_blocks")


def _wrote(out: Path, names: list[str]) -> None:
    print(f"wrote {out}/{{{', '.join(names)}}}")


def _figure(fig, out: Path, stem: str) -> list[str]:
    return [p.name for p in save_figure(fig, out / stem)]


# --- figure1 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure1Settings:
    """Settings of ``figure1``: the gridworld solved exactly at each noise."""

    noise: tuple[float, ...] = setting((0.1, 0.3), "noise levels to solve", probability,
                                       "probabilities in [0, 1]")
    gamma: float = setting(0.9, "discount factor", discount, "a number in (0, 1)")
    budget: float = setting(1.5, "discounted-cost budget", non_negative,
                            "a non-negative number")
    backend: str = setting("cvxpy", "solver backend: the LP (cvxpy or highspy, both HiGHS), the "
                                    "Lagrangian route, or auto",
                           choices=("cvxpy", "highspy", "lagrangian", "auto"))
    noise_model: str = setting(
        "code", "noise model: the authors' code's (every published number) or Section 6's text",
        choices=families.NOISE_MODELS)


def run_figure1(settings: Figure1Settings, run: RunSettings) -> int:
    """Solve the gridworld at each noise exactly and draw the paper's Figure 1."""
    validate(settings)
    out = take_output(run, "figure1", settings)
    start = time.perf_counter()
    rows, policies = [], {}
    published = settings.gamma == 0.9 and settings.budget == 1.5 and \
        settings.noise_model == "code"
    for noise in settings.noise:
        task = tabular.gridworld(noise, gamma=settings.gamma, budget=settings.budget,
                                 noise_model=settings.noise_model)
        try:
            solution = tabular.solve(task, backend=settings.backend)
        except tabular.InfeasibleCMDPError as exc:
            raise UsageError(f"--noise {noise}: {exc}") from None
        paper = families.PAPER_GRIDWORLD_OPTIMA.get(round(noise, 6)) if published else None
        rows.append({
            "noise": noise, "reward_value": solution.reward_value,
            "cost_value": float(solution.cost_value), "budget": settings.budget,
            "multiplier": float(np.ravel(solution.multipliers)[0]),
            "randomised_states": int(np.count_nonzero((solution.policy > 0).sum(axis=1) > 1)),
            "paper_reward_value": paper,
            "abs_error_vs_paper": None if paper is None else abs(solution.reward_value - paper),
            "backend": solution.backend,
        })
        policies[f"noise {noise:g}: V_r = {solution.reward_value:.3f}, "
                 f"V_cost = {float(solution.cost_value):.3f}"] = solution.policy
        print(f"noise {noise:g}: optimal reward value {solution.reward_value:.5f}, "
              f"cost value {float(solution.cost_value):.5f} (budget {settings.budget:g})"
              + ("" if paper is None else f", paper {paper:.5f}"))
    written = _figure(plot_figure1(policies), out, "figure1")
    results.atomic_write(out / "policies.npz", lambda h: np.savez(
        h, noise=np.array(settings.noise), policies=np.stack(list(policies.values()))),
        binary=True)
    results.write_table(out / "optima.csv", rows)
    results.write_summary(out, "figure1", asdict(settings), rows, time.perf_counter() - start)
    _wrote(out, [*written, "policies.npz", "optima.csv", "summary.json"])
    return 0


# --- train ------------------------------------------------------------------------------------


#: train's flags that are passed to the family's factory (when set)
TRAIN_FAMILY_FLAGS = ("mean", "std", "gamma", "budget", "size", "noise_model")


@dataclass(frozen=True)
class TrainSettings(FamilySettings):
    """Settings of ``train``: Algorithm 1 on a family, then Lemma 3.5's quantities on held-out
    tasks. The gridworld's own parameters (mean, std, gamma, budget) may be changed."""

    oracle: str | None = setting(None, "O_c: compare parameters (needs an exact distance scale; "
                                       "the authors') or exact task distance",
                                 choices=("parameter", "distance"))
    safe_oracle: str | None = setting(None, "O_s: the optimal policy of one task (designated), "
                                            "the worst-case slack maximiser, or the least-cost "
                                            "policy of the hardest cover task (min-cost)",
                                      choices=("designated", "worst-case", "min-cost"))
    safe_parameter: float | None = setting(None, "parameter of the designated safe task "
                                                 "(gridworld 0.4, as published)")
    xi: float = setting(0.0, "required margin of pi_s on the cover (normalised utility units)",
                        non_negative, "a non-negative number")
    heldout: int = setting(1000, "held-out tasks for Lemma 3.5", positive, "a positive integer")
    mean: float | None = setting(None, "noise mean of the family's D, where it has one "
                                       "(gridworld 0.3)")
    std: float | None = setting(None, "gridworld noise standard deviation (0.03)", positive,
                                "a positive number")
    gamma: float | None = setting(None, "gridworld discount factor (0.9)", discount,
                                  "a number in (0, 1)")
    budget: float | None = setting(None, "gridworld discounted-cost budget (1.5)", non_negative,
                                   "a non-negative number")

    def validate(self) -> TrainSettings:
        FamilySettings.validate(self)
        if self.family_file is None:
            accepted = families.family_spec(self.family).parameters()
            flags = [f"--{p.replace('_', '-')}" for p in TRAIN_FAMILY_FLAGS if p in accepted]
            for name in self.family_parameters():
                if name not in accepted:
                    raise SettingsError(
                        f"--{name.replace('_', '-')}: the {self.family} family has no parameter "
                        f"{name!r}; of train's family flags it takes "
                        f"{', '.join(flags) or 'none'}")
        return self

    def family_parameters(self) -> dict:
        return {**FamilySettings.family_parameters(self),
                **{name: getattr(self, name) for name in TRAIN_FAMILY_FLAGS[:-1]
                   if getattr(self, name) is not None}}


def _per_constraint(name: str, values) -> dict:
    """``{name: v}`` for one constraint, ``{name_1: v_1, ..., name_K: v_K}`` for K."""
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if values.size == 1:
        return {name: float(values[0])}
    return {f"{name}_{k + 1}": float(v) for k, v in enumerate(values)}


def run_train(settings: TrainSettings, run: RunSettings) -> int:
    """Algorithm 1 on a family; the result, cover table, summary and figure."""
    settings.validate()
    distribution, spec = experiment_family(settings)
    oracle = settings.oracle or spec.oracle
    radius = spec.radius if settings.radius is None else settings.radius
    safe_kind = settings.safe_oracle or spec.safe_oracle
    safe_parameter = spec.safe_parameter if settings.safe_parameter is None else \
        settings.safe_parameter
    out = take_output(run, "train", settings)
    coverage = make_coverage_oracle(oracle, radius)
    safe_oracle = make_safe_oracle(safe_kind, xi=settings.xi, parameter=safe_parameter)
    result = train(distribution, coverage, settings.delta, seed=settings.seed,
                   safe_oracle=safe_oracle, progress=not run.quiet)
    try:
        covering = covering_number(distribution, radius, settings.delta, oracle=oracle)
    except (NotImplementedError, ValueError):
        covering = None       # no exact covering number for this family
    report = check_lemma_3_5(result, distribution, coverage, n_heldout=settings.heldout,
                             seed=settings.seed + 1, covering_number=covering,
                             progress=not run.quiet)
    result.extra["lemma_3_5"] = report
    result.save(out / "training.npz")
    form = distribution.build(result.cover_parameters[0]).utility_form
    names = distribution.parameter_names
    rows = [{**{name: float(result.cover_parameters[i, j]) for j, name in enumerate(names)},
             "reward_value": float(result.reward_values[i]),
             **_per_constraint("cost_value", result.cost_values[i]),
             "safe_reward_value": float(result.safe_reward_values[i]),
             **_per_constraint("safe_cost_value", result.safe_cost_values[i]),
             "safe_margin_paper_units": float(result.safe_margin[i]),
             "safe_slack_cost_units": float(np.min(form.budgets
                                                   - np.atleast_1d(result.safe_cost_values[i])))}
            for i in np.lexsort(result.cover_parameters.T[::-1])]
    results.write_table(out / "cover.csv", rows)
    written = _figure(plot_training(result, distribution), out, "training")
    record = {"cover_size": result.cover_size, "rounds": len(result.rounds),
              "n_sampled": result.n_sampled, "covering_number": covering,
              **{k: v for k, v in report.items() if np.ndim(v) == 0}}
    recorded = asdict(settings) | {"oracle": oracle, "radius": radius,
                                   "safe_oracle": result.settings["safe_oracle"],
                                   "distribution": result.distribution,
                                   "rounds": result.rounds}
    results.write_summary(out, "train", recorded, [record], result.wall_seconds)
    points = result.cover_parameters[np.lexsort(result.cover_parameters.T[::-1])]
    print(f"cover of {result.cover_size} tasks at {', '.join(names)} "
          f"{np.array2string(points[:, 0] if len(names) == 1 else points, precision=4)} "
          f"after {len(result.rounds)} rounds ({result.n_sampled} sampled tasks, "
          f"{result.wall_seconds:.2f} s); covering number {covering}; held-out coverage "
          f"{report['heldout_coverage']:.3f} (Lemma 3.5 bound {report['coverage_bound']:.3f}); "
          f"pi_s min cost slack {report['safe_policy_min_slack_cost_units']:.4f}")
    _wrote(out, ["training.npz", "cover.csv", *written, "summary.json"])
    return 0


# --- reproduce --------------------------------------------------------------------------------


#: bytes per episode of a run record held in memory (exact values, flags) and of its curves
RECORD_BYTES, CURVE_BYTES = 40, 16
#: bytes per pending sweep item (its settings dict) and per stored run record
ITEM_BYTES = 1_000


def run_reproduce(settings: ExperimentSettings, run: RunSettings) -> int:
    """The paper's experiment end to end: Figures 1 and 2, per-run table, curves, summary."""
    settings.validate()
    n_runs = len(settings.algorithms) * settings.tasks
    results.check_memory("--episodes, --tasks", n_runs * settings.episodes
                         * (RECORD_BYTES + CURVE_BYTES), f"{n_runs} runs of {settings.episodes} "
                         "episodes kept for the figures and curves")
    # the report is how the stored runs are written up, not part of them: a folder's runs serve
    # every report
    out = take_output(run, "reproduce", dataclasses.replace(settings, report=REPORTS[0]),
                      keep=("store", "training.npz"))
    start = time.perf_counter()
    # resumable: the training and every finished run are kept in the folder as they complete
    path = out / "training.npz"
    if not path.exists():
        experiment_training(settings, progress=not run.quiet)[0].save(path)
    training, distribution, records, rows = reproduce(
        settings, progress=not run.quiet, workers=run.workers, store=out / "store",
        training=TrainingResult.load(path))
    results.write_table(out / "runs.csv", rows)
    order = [(row["key"], i) for key in records for i, row in enumerate(
        r for r in rows if r["key"] == key)]
    results.write_curves(out / "curves.npz", [
        {"reward_value": records[key][i].reward_value, "cost_value": records[key][i].cost_value}
        for key, i in order])
    written = ["training.npz", "runs.csv", "curves.npz"]
    figure1 = distribution.figure1_policies()          # the family says whether it has one
    if figure1:
        written += _figure(plot_figure1(figure1), out, "figure1")
    budgets = distribution.build(training.cover_parameters[0]).budgets
    budget = float(budgets[0]) if budgets.size == 1 else budgets
    published = {key: [authors_report(r) for r in runs] for key, runs in records.items()}
    shown_records = published if settings.report == "authors" else records
    for stem in (*FIGURES, "figure2_other"):      # membership: the algorithm registry's
        shown = {key: shown_records[key] for key in figure_keys(stem, records)}
        if shown:
            written += _figure(plot_figure2(shown, budget, report=settings.report), out, stem)
    shown = {key: published[key] for key in figure_keys("figure2", records)}
    if shown:
        written += _figure(plot_figure2(shown, budget, report="authors"), out,
                           "figure2_as_published")
    recorded = settings_dict(settings) | {
        "training": training.settings,
        "cover_parameters": (training.cover_parameters[:, 0]
                             if training.cover_parameters.shape[1] == 1
                             else training.cover_parameters).tolist()}
    for key, runs in records.items():
        recorded["algorithms"][key]["parameters"] = {
            name: value for name, value in runs[0].log.items() if name not in RUN_SPECIFIC_LOG}
    results.write_json(out / "events.json", {key: [r.log.get("events", []) for r in runs]
                                             for key, runs in records.items()})
    summary = [summarise(key, runs) for key, runs in shown_records.items()]
    results.write_summary(out, "reproduce", recorded, summary, time.perf_counter() - start)
    print(f"training: cover of {training.cover_size} tasks; test phase: "
          f"{len(next(iter(records.values())))} tasks x {settings.episodes} episodes of "
          f"{settings.resolved_horizon()} steps")
    for s in summary:
        print(f"{s['key']:16s} [{s['preset']}] final regret mean {s['final_regret_mean']:10.1f} "
              f"(q10 {s['final_regret_q10']:.1f}, q90 {s['final_regret_q90']:.1f}); "
              f"violating episodes {s['violations']} in {s['runs_with_violation']}/{s['runs']} "
              f"runs; max cost {s['max_cost_value']:.4f}")
    _wrote(out, [*written, "events.json", "summary.json"])
    return 0


# --- violations -------------------------------------------------------------------------------


def run_violations(settings: ViolationSettings, run: RunSettings) -> int:
    """Violation rates over many runs on test tasks drawn from D (Clopper-Pearson intervals)."""
    from safepce.theory.sweep import ResultStore

    from ..sweeps import plot_violation_rates

    settings.validate()
    if run.engine == "dask" and run.scheduler:
        check_scheduler(run.scheduler)
    n_runs = settings.runs * len(settings.algorithms)
    results.check_memory("--runs, --episodes", n_runs * ITEM_BYTES
                         + run.workers * settings.episodes * RECORD_BYTES,
                         f"{n_runs} runs (their records) and {run.workers} runs of "
                         f"{settings.episodes} episodes at a time")
    out = take_output(run, "violations", settings, keep=("store", "training.npz"))
    start = time.perf_counter()
    path = out / "training.npz"
    if not path.exists():
        experiment_training(settings, progress=not run.quiet)[0].save(path)
    training = TrainingResult.load(path)
    # the store refuses a folder that holds anything but this same sweep (resume = same command
    # with the same training, by content: a retrained file with the same numbers resumes)
    store = ResultStore(out, {"command": "violations",
                              "training_content_sha256": training.content_sha256()}
                        | {f.name: (list(v) if isinstance(v := getattr(settings, f.name), tuple)
                                    else v) for f in fields(settings)})
    result = violation_rates(path, settings, workers=run.workers, progress=not run.quiet,
                             engine=run.engine, scheduler=run.scheduler, store=store)
    results.write_table(out / "runs.csv", result["runs"])
    written = _figure(plot_violation_rates(result["per_algorithm"]), out, "violations")
    recorded = asdict(settings) | {"horizon": settings.resolved_horizon()}
    results.write_summary(out, "violations", recorded, result["per_algorithm"],
                          time.perf_counter() - start)
    for s in result["per_algorithm"]:
        print(f"{s['key']:16s} [{s['preset']}] runs with a violation: "
              f"{s['runs_with_violation']}/{s['runs']} = {s['fraction']:.4f} "
              f"(95% CI {s['clopper_pearson_low']:.4f}-{s['clopper_pearson_high']:.4f}); "
              f"where Assumption 3.3 holds {s['runs_with_violation_assumption_holds']}/"
              f"{s['runs_assumption_holds']} (95% upper "
              f"{s['clopper_pearson_high_assumption_holds']:.4f}); "
              f"max cost {s['max_cost_value']:.4f}")
    _wrote(out, ["training.npz", "runs.csv", *written, "summary.json"])
    return 0


# --- sweep-delta ------------------------------------------------------------------------------


def run_sweep_delta(settings, run: RunSettings) -> int:
    """Violation rate against Algorithm 1's delta, with a plot."""
    from ..sweeps import plot_violation_vs_delta, violation_rate_vs_delta

    settings.validate()
    if run.engine == "dask" and run.scheduler:
        check_scheduler(run.scheduler)
    out = take_output(run, "sweep-delta", settings, keep=("delta_*",))
    start = time.perf_counter()
    rows = violation_rate_vs_delta(settings, out, workers=run.workers,
                                   progress=not run.quiet, engine=run.engine,
                                   scheduler=run.scheduler)
    results.write_table(out / "violation_vs_delta.csv", rows)
    written = _figure(plot_violation_vs_delta(rows), out, "violation_vs_delta")
    results.write_summary(out, "sweep-delta", asdict(settings), rows,
                          time.perf_counter() - start)
    for row in rows:
        print(f"delta {row['delta']:<6g} {row['key']:16s} [{row['preset']}] cover "
              f"{row['cover_size']:3d}: {row['violating_runs']}/{row['runs']} runs violate "
              f"({row['low']:.3f}-{row['high']:.3f})")
    _wrote(out, ["violation_vs_delta.csv", *written, "summary.json"])
    return 0


# --- verify -----------------------------------------------------------------------------------


def run_verify(settings, run: RunSettings) -> int:
    """Check the paper's claims on exact quantities; print a table, write the claims and plots."""
    from ..claims import claims_json, claims_table
    from ..claims import run_verify as verify

    out = take_output(run, "verify", settings, keep=("store",))
    start = time.perf_counter()
    if run.scheduler:
        check_scheduler(run.scheduler)
    claims, figures = verify(out, quick=settings.quick, workers=run.workers,
                             progress=not run.quiet, names=settings.claims,
                             engine=run.engine, scheduler=run.scheduler)
    records = claims_json(claims)
    results.write_json(out / "verify.json", records)
    results.write_table(out / "claims.csv", records)
    written = [name for stem, fig in figures.items() for name in _figure(fig, out, stem)]
    results.write_summary(out, "verify", asdict(settings), records,
                          time.perf_counter() - start)
    print(claims_table(claims))
    for claim in claims:
        if claim.status != "passed":
            print(f"{claim.status.upper()} {claim.claim}: {claim.note}")
    counts = {status: sum(c.status == status for c in claims)
              for status in ("passed", "failed", "inconclusive", "refuted")}
    print(", ".join(f"{n} {status}" for status, n in counts.items())
          + f" in {time.perf_counter() - start:.1f} s")
    tables = [name for name in ("findings.csv", "sandwich.csv", "sandwich_rates.csv",
                                "sandwich_runs.csv") if (out / name).exists()]
    _wrote(out, ["verify.json", "claims.csv", *tables, *written, "summary.json"])
    # a failed check of the toolkit is an error; a refuted paper statement is a finding
    return 1 if counts["failed"] else 0


__all__ = ["Figure1Settings", "TrainSettings", "run_figure1", "run_train", "run_reproduce",
           "run_violations", "run_sweep_delta", "run_verify"]
