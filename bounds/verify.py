"""``safepce verify``: the claims of Ni & Kamgarpour 2026 (arXiv:2601.21845) checked on exact
quantities, as a table of claim functions.

:data:`CLAIMS` lists (name, paper label, function); ``verify`` runs them in order. A function
takes the :class:`VerifyContext` (sizes, workers, shared training results, the figures it may
add) and returns :class:`Claim` records: ``claim`` (the paper's label first), ``passed``, ``runs``
(instances or runs), ``worst_margin`` (smallest slack of the checked inequality over all runs;
>= 0 when it holds, in the units the note gives) and ``note``. Adding a claim = one function and
one row of :data:`CLAIMS`. ``quick`` sizes finish in well under 3 minutes on 2 cores.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from safepce import tabular
from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.distributions import runnable_family
from safepce.tabular.errors import InputError
from safepce.theory.algorithms.registry import make_algorithm
from safepce.theory.algorithms.safe_pce import (
    THEORY,
    SafePCE,
    SafePCEPreset,
    mixture_weights,
)
from safepce.theory.algorithms.safe_pce_certified import CERTIFIED
from safepce.theory.experiment import (
    PAPER_TEST_TASKS,
    ExperimentSettings,
    experiment_training,
    run_seed,
)
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.results import atomic_write, write_table
from safepce.theory.settings import setting
from safepce.theory.sweep import map_runs
from safepce.theory.training import TrainingResult, check_lemma_3_5, train

from .covering import covering_number
from .falsify import (
    EQ_6,
    FULL,
    LEMMA_C3,
    LEMMA_C3_CORRECTED,
    QUICK,
    FalsifyError,
    RatioClaim,
    falsify,
    save_counterexample,
)
from .hard_instance import (
    check_hard_family,
    hard_family,
    sample_lower_bound,
    sequential_identification,
)
from .plots import plot_lower_bound_slopes, plot_regret_envelope, plot_scaled_sweep
from .sample_complexity import fitted_slope, violation_rate
from .sandwich import plot_sandwich, sandwich
from .upper import corollary_4_3_samples, theorem_4_2_rate, theorem_4_2_terms

#: the runnable instance: gamma 0.5 (L = 6), cover radius 0.01 in task distance, delta 0.1
RUNNABLE = {"seed": 0, "gamma": 0.5, "eps": 0.01, "delta": 0.1, "horizon": 40, "xi": 0.5}


#: what a claim checks: the toolkit's own implementation of a result (``check``: failing means
#: the toolkit or the theorem is wrong and ``verify`` exits 1), or a statement the paper makes
#: about its experiment (``paper-statement``: failing means exact computation refutes it)
KINDS = ("check", "paper-statement")


@dataclass
class Claim:
    claim: str
    passed: bool
    runs: int
    worst_margin: float
    note: str = ""
    kind: str = "check"
    #: the data can neither confirm nor refute it (e.g. a median beyond the simulated budget)
    inconclusive: bool = False
    #: how hard the claim was attacked: a falsification budget (bounds.falsify), or the fixed
    #: cases a claim not yet written as a ratio is checked on
    search_budget: str = "fixed cases (no search)"
    #: largest lhs / rhs found (holds iff <= 1); NaN for a claim not written as a ratio
    worst_ratio: float = math.nan
    #: where: a saved counterexample (path) or a description of the worst instance
    worst_instance: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}; got {self.kind!r}")
        self.passed = bool(self.passed)

    @property
    def status(self) -> str:
        """passed, inconclusive, failed (a check of the toolkit) or refuted (a paper
        statement)."""
        if self.passed:
            return "passed"
        if self.inconclusive:
            return "inconclusive"
        return "refuted" if self.kind == "paper-statement" else "failed"


def claim_names() -> tuple[str, ...]:
    return tuple(check.name for check in CLAIMS)


@dataclass(frozen=True)
class VerifySettings:
    """Settings of ``verify``."""

    quick: bool = setting(False, "small sizes and the quick search budget ("
                          + QUICK.describe() + " per ratio claim; full: "
                          + FULL.describe() + ")")
    claims: tuple[str, ...] = setting((), "run only these claims (default: all)",
                                      choices=claim_names)


@dataclass
class VerifyContext:
    """What claim functions share: sizes, workers, the output folder, results computed once
    (``cache``) and the figures they draw (name -> Figure)."""

    out: Path
    quick: bool = True
    workers: int = 2
    progress: bool = False
    engine: str = "local"
    scheduler: str | None = None
    cache: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)

    def once(self, name: str, compute):
        if name not in self.cache:
            self.cache[name] = compute()
        return self.cache[name]


# --- the runnable instance -----------------------------------------------------------------------


def runnable_training() -> tuple[TrainingResult, object]:
    family = runnable_family(RUNNABLE["seed"], gamma=RUNNABLE["gamma"])
    training = train(family, DistanceCoverage(RUNNABLE["eps"]), RUNNABLE["delta"], seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=RUNNABLE["xi"]), progress=False)
    return training, family


def check_lemma_3_5_claims(training, family, n_heldout: int) -> list[Claim]:
    eps, delta, gamma = RUNNABLE["eps"], RUNNABLE["delta"], RUNNABLE["gamma"]
    C = covering_number(family, eps, delta, oracle="distance")
    report = check_lemma_3_5(training, family, DistanceCoverage(eps), n_heldout=n_heldout,
                             seed=1, covering_number=C)
    xi = float(training.safe_margin.min())
    L = simulation_lemma_constant(gamma)
    assumption = (8 * L + 18) * eps <= xi
    note = (f"runnable family (gamma {gamma}, L {L:g}, eps {eps}, xi {xi:.3f}); "
            f"(8L+18) eps <= xi: {assumption}")
    optimality_bound = 4 * eps * L * (1 + 1 / (xi * (1 - gamma)))
    margins = [
        ("Lemma 3.5.1: prediction error of (u, v, u_s, v_s) <= eps L", n_heldout,
         report["prediction_error_bound"] - report["prediction_error_max"], note),
        ("Lemma 3.5.1: covering policy is 4 eps L (1 + 1/(xi (1-gamma)))-optimal", n_heldout,
         optimality_bound - report["optimality_gap_max"], note),
        ("Lemma 3.5.2: pi_s is (xi - eps L)-feasible on every held-out task", n_heldout,
         report["safe_policy_min_slack"] - (xi - eps * L), note),
        ("Lemma 3.5.3: |U_hat| <= 2 C ln(1/delta)", 1,
         report["cover_size_bound"] - training.cover_size, f"C = {C}; " + note),
        ("Lemma 3.5.3: coverage of held-out tasks >= 1 - 6 delta", n_heldout,
         report["heldout_coverage"] - report["coverage_bound"], note),
    ]
    # each item is a check only where its premise (8L + 18) eps <= xi holds
    return [Claim(name, assumption and margin >= 0, runs, margin, text)
            for name, runs, margin, text in margins]


def _runnable_runs(args) -> list[dict]:
    """Worker: Safe-PCE runs on test tasks of the runnable family (module level for pickling)."""
    training_path, thetas, seeds, n_episodes, scale = args
    training = TrainingResult.load(training_path)
    family = runnable_family(RUNNABLE["seed"], gamma=RUNNABLE["gamma"])
    units = family.build([0.5]).utility_form
    xi = float(training.safe_margin.min())
    eps, delta, gamma = RUNNABLE["eps"], RUNNABLE["delta"], RUNNABLE["gamma"]
    out = []
    for theta, seed in zip(thetas, seeds, strict=True):
        preset = THEORY if scale == 1.0 else SafePCEPreset("scaled", units="paper", scale=scale)
        algorithm = SafePCE(training, units, RUNNABLE["horizon"], preset=preset, eps=eps,
                            delta=delta)
        record = run_test_phase(algorithm, family.build([theta]), n_episodes,
                                RUNNABLE["horizon"], seed=int(seed))
        tried = record.log["candidate_order"]
        v_s = algorithm.v_s[tried]
        alpha_1 = np.array([mixture_weights(v, eps, simulation_lemma_constant(gamma), gamma,
                                            1)[1] for v in v_s])
        bound = theorem_4_2_terms(n_episodes, delta, eps, gamma, xi, len(tried), v_s, alpha_1)
        regret = float(record.cumulative_regret[-1] / units.reward_scale)
        out.append({"theta": float(theta), "seed": int(seed),
                    "violations": int(np.count_nonzero(record.violated)),
                    "max_cost_value": float(record.cost_value.max()), "budget": record.budget,
                    "regret": regret, "bound": bound.total, "tried": len(tried),
                    "safe_margins": v_s.tolist(), "first_weights": alpha_1.tolist(),
                    "curve": (record.cumulative_regret[:: max(1, n_episodes // 200)]
                              / units.reward_scale).tolist()})
    return out


def runnable_runs(training_path, n_runs: int, n_episodes: int, seed: int, scale: float = 1.0,
                  workers: int = 2, progress: bool = False) -> list[dict]:
    """Safe-PCE on ``n_runs`` test tasks theta ~ U[0, 1] with fresh seeds, over a process pool;
    results do not depend on the number of workers."""
    root = np.random.SeedSequence(seed)
    theta_seed, run_seeds = root.spawn(2)
    thetas = np.random.default_rng(theta_seed).uniform(0, 1, n_runs)
    seeds = run_seeds.generate_state(n_runs, np.uint32)
    chunk = max(1, math.ceil(n_runs / (4 * workers)))
    jobs = [(str(training_path), thetas[i:i + chunk], seeds[i:i + chunk], n_episodes, scale)
            for i in range(0, n_runs, chunk)]
    return map_runs(_runnable_runs, jobs, workers, progress, f"Safe-PCE [theory x {scale:g}] runs")


# --- the hard family and its lower bound ---------------------------------------------------------


def hard_family_claims(quick: bool) -> tuple[list[Claim], dict]:
    settings = [(1, 0.9, 0.1, 0.1), (2, 0.9, 0.1, 0.1)] + ([] if quick else [(3, 0.9, 0.1, 0.05),
                                                                             (2, 0.8, 0.2, 0.1)])
    checks = [check_hard_family(hard_family(*s)) for s in settings]
    n = len(checks)
    note = "m, gamma, xi, eps in " + str(settings)
    claims = [
        Claim("Theorem 5.1 lower bound: hard family has Slater margin xi",
              min(c["slater_margin"] for c in checks) >= -1e-9, n,
              min(c["slater_margin"] for c in checks), note),
        Claim("Theorem 5.1 lower bound: pairwise task distance equals a2",
              max(c["distance_error"] for c in checks) <= 1e-12, n,
              -max(c["distance_error"] for c in checks), note),
        Claim("Theorem 5.1 lower bound: C at radius xi eps (1-gamma)^3 is 2^m",
              min(c["covering"] for c in checks) > 0, n, min(c["covering"] for c in checks),
              note + "; margin = a2 - radius (each ball holds one task)"),
        Claim("Theorem 5.1 lower bound: eps-optimal feasible policies differ across tasks",
              min(c["distinct"] for c in checks) > 0, n, min(c["distinct"] for c in checks),
              note + "; margin = min over i != j of max(V*_j - V_j(pi*_i) - eps, -slack_j)"),
        Claim("Theorem 5.1 lower bound: the constraint is active in every task",
              min(c["constraint_active"] for c in checks) > 0, n,
              min(c["constraint_active"] for c in checks), note + "; margin = least multiplier"),
    ]
    slope_claims, curves = slope_claims_on_grid(quick)
    return claims + slope_claims, curves


def slope_claims_on_grid(quick: bool) -> tuple[list[Claim], dict]:
    """On one grid per parameter: the explicit lower bound's log-log slope, and the samples of a
    sequential-test identification algorithm (generative model) on M_0 against that bound."""
    delta = 0.05
    runs = 15 if quick else 60
    grids = {
        "eps": [((2, 0.9, 0.1, round(float(e), 4)), None)
                for e in np.geomspace(0.04 if quick else 0.02, 0.1, 4)],
        "xi": [((2, 0.9, round(float(x), 4), 0.1), None)
               for x in np.geomspace(0.07 if quick else 0.05, 0.2, 4)],
        # one c3 for every m (the largest default), so that only C changes along the grid
        "C": [((m, 0.9, 0.1, 0.1), 1 + 8 / 0.9**14) for m in range(1, 5 if quick else 6)],
    }
    bound_claims, empirical_claims, curves = [], [], {}
    worst_ratio, failures, total = math.inf, 0, 0
    for name, grid in grids.items():
        x, bounds, means = [], [], []
        for arguments, c3 in grid:
            family = hard_family(*arguments, c3=c3) if c3 else hard_family(*arguments)
            results = [sequential_identification(family, 0, delta, seed) for seed in range(runs)]
            bounds.append(sample_lower_bound(family, delta))
            means.append(float(np.mean([r.samples for r in results])))
            worst_ratio = min(worst_ratio, means[-1] / bounds[-1])
            failures += sum(not r.eps_optimal_and_feasible for r in results)
            total += runs
            x.append({"eps": arguments[3], "xi": arguments[2], "C": 2.0 ** arguments[0] - 1}[name])
        x = np.array(x)
        axis = 1 / x if name in ("eps", "xi") else x
        target = 1 if name == "C" else 2
        label = "C" if name == "C" else f"1/{name}"
        for kind, values, store in (("explicit lower bound", bounds, bound_claims),
                                    ("sequential identification's samples", means,
                                     empirical_claims)):
            slope = fitted_slope(axis, values)
            measured = kind.startswith("sequential")
            store.append(Claim(
                f"slope: {kind} vs {label} (theorem exponent {target})",
                abs(slope - target) <= 0.3, len(grid) * (runs if measured else 1),
                0.3 - abs(slope - target),
                f"fitted log-log slope {slope:.3f} on the hard family ({grid[0][0]} ... "
                f"{grid[-1][0]}, (m, gamma, xi, eps))"
                + ("; sequential identification on M_0, C's slope carries the ln(2^m / delta) "
                   "of the per-gate tests" if measured else "")))
        curves[name] = (x, bounds, means)
    # the algorithm errs with probability <= delta; fail only on a significant excess
    errors = violation_rate(failures, total)
    identification = Claim(
        "Theorem 5.1 lower bound: samples of a correct identification algorithm >= the explicit "
        "lower bound", worst_ratio >= 1 and errors["low"] <= delta, total, worst_ratio - 1,
        f"margin = least (mean samples / lower bound) - 1 over every grid point; runs not "
        f"returning an eps-optimal feasible policy {failures}/{total} (95% CI "
        f"{errors['low']:.3f}-{errors['high']:.3f}, delta = {delta})")
    # 1/(1-gamma): the bound only (the algorithm needs ~1e8 samples per run near gamma = 0.96)
    gammas = np.array([0.9, 0.92, 0.94, 0.96])
    c3 = 1 + 8 / gammas[0] ** 6                 # one c3 for the grid (m = 1)
    horizon_bounds = [sample_lower_bound(hard_family(1, float(g), 0.1, 0.05, c3=c3), delta)
                      for g in gammas]
    slope = fitted_slope(1 / (1 - gammas), horizon_bounds)
    bound_claims.append(Claim(
        "slope: explicit lower bound vs 1/(1-gamma) (theorem exponent 5)", abs(slope - 5) <= 0.3,
        gammas.size, 0.3 - abs(slope - 5),
        f"fitted log-log slope {slope:.3f} for gamma in {gammas.tolist()} (m 1, xi 0.1, eps 0.05); "
        "factors 1/gamma and 1/q0 still move at smaller gamma (5.59 on [0.8, 0.9])"))
    return [identification, *bound_claims, *empirical_claims], curves


# --- the claim functions ------------------------------------------------------------------------


def falsified(context: VerifyContext, claim: RatioClaim, seed: int = 0) -> Claim:
    """A :class:`Claim` from :func:`bounds.falsify.falsify` under the context's budget; a
    counterexample is saved under ``counterexamples/`` in the output folder."""
    budget = QUICK if context.quick else FULL
    try:
        result = falsify(claim, budget, seed=seed)
    except FalsifyError as exc:                     # the premise held on no instance searched
        return Claim(f"{claim.label}: {claim.statement}", False, budget.evaluations, math.nan,
                     str(exc), kind=claim.kind, inconclusive=True,
                     search_budget=budget.describe())
    path = save_counterexample(context.out, claim, result)
    where = (str(path.relative_to(context.out)) if path is not None
             else result.worst_instance.describe())
    exact = float(result.exact_ratio)
    note = (f"worst ratio {result.worst_ratio:.6g} found by the {result.worst_stage} stage "
            f"(by stage: " + ", ".join(f"{k} {v:.4g}" for k, v in result.by_stage.items())
            + f"); premise held there: {result.premise_held}; exact route on "
            + ("the smallest counterexample" if path is not None else "the worst instance")
            + f": {exact:.10g}; routes agree: {result.routes_agree}")
    status = result.status
    return Claim(f"{claim.label}: {claim.statement}", status == "passed", result.evaluations,
                 1.0 - result.worst_ratio, note, kind=claim.kind,
                 search_budget=result.budget, worst_ratio=result.worst_ratio,
                 worst_instance=where)


def claim_lemma_c3(context: VerifyContext) -> list[Claim]:
    """Lemma C.3 as the paper states it (refuted: the initial-distribution term is missing) and
    with the corrected constants of :func:`safepce.tabular.distance.corrected_simulation_constants`,
    each attacked by the falsification engine."""
    return [falsified(context, LEMMA_C3), falsified(context, LEMMA_C3_CORRECTED)]


def claim_eq_6(context: VerifyContext) -> list[Claim]:
    """Eq. 6's closed form against App. D's recursion, searched over (v_s, eps, gamma) up to
    Eq. 7's m(l); both restated in exact arithmetic as the second route."""
    return [falsified(context, EQ_6)]


def claim_eq_30(context: VerifyContext) -> list[Claim]:
    """Eq. 30 (App. E) for the weights Algorithm 2 deploys: refuted at m = ceil(log_C eps)
    (bounds.falsify_safety)."""
    from .falsify_safety import EQ_30

    return [falsified(context, EQ_30)]


def _runnable(context: VerifyContext):
    def compute():
        training, family = runnable_training()
        path = training.save(context.out / "runnable_training.npz")
        return training, family, path
    return context.once("runnable", compute)


def claim_lemma_3_5(context: VerifyContext) -> list[Claim]:
    """Lemma 3.5's items 1 (predicted values) and 2 (pi_s's feasibility) attacked by the
    falsification engine over task pairs where its premise (8L + 18) eps <= xi holds (refuted,
    as Lemma C.3 on which they rest), and every item on held-out tasks of the runnable family."""
    from .falsify import LEMMA_3_5

    training, family, _ = _runnable(context)
    return [falsified(context, LEMMA_3_5),
            *check_lemma_3_5_claims(training, family, 300 if context.quick else 2000)]


def claim_lemma_c2(context: VerifyContext) -> list[Claim]:
    """Lemma C.2's cover size on D uniform over a box's vertices whose centre (a task of the
    class, Def. 4.1) covers them all: refuted (bounds.falsify_cover)."""
    from .falsify_cover import LEMMA_C2

    return [falsified(context, LEMMA_C2)]


def claim_lemma_c4(context: VerifyContext) -> list[Claim]:
    """Lemma C.4 (the optimality item of Lemma 3.5 rests on it) attacked over task pairs, their
    midpoint and a Slater policy (bounds.falsify_optimality)."""
    from .falsify_optimality import LEMMA_C4

    return [falsified(context, LEMMA_C4)]


def claim_lemma_4_5(context: VerifyContext) -> list[Claim]:
    """Lemma 4.5.1: App. D's induction attacked by the falsification engine over the schedule's
    inputs (bounds.falsify_safety), and Safe-PCE [theory] runs of the runnable family."""
    from .falsify_safety import LEMMA_4_5

    return [falsified(context, LEMMA_4_5), *_lemma_4_5_runs(context)]


def _lemma_4_5_runs(context: VerifyContext) -> list[Claim]:
    """Lemma 4.5 on Safe-PCE [theory] runs of the runnable family."""
    _, _, path = _runnable(context)
    n_runs, n_episodes = (100, 20_000) if context.quick else (10_000, 20_000)
    runs = runnable_runs(path, n_runs, n_episodes, seed=7, workers=context.workers,
                         progress=context.progress)
    rate = violation_rate(sum(r["violations"] > 0 for r in runs), len(runs))
    return [Claim("Lemma 4.5: every policy Safe-PCE [theory] deploys is feasible",
                  rate["violating_runs"] == 0, len(runs),
                  min(r["budget"] - r["max_cost_value"] for r in runs),
                  f"runnable family, K = {n_episodes}; runs with a violation "
                  f"{rate['violating_runs']}/{rate['runs']} (95% CI {rate['low']:.4f}-"
                  f"{rate['high']:.4f}); margin in cost units")]


#: the instance of the Theorem 4.2 check: tabular.distributions.slack_pair_family
PAIR = {"gamma": 0.5, "eps": 1e-3, "delta": 0.05, "horizon": 20}


def _pair_runs(args) -> list[dict]:
    """Worker: Safe-PCE [theory] runs on the slack pair with App. E's bound per run."""
    training_path, tasks, seeds, n_episodes = args
    family = tabular.distributions.slack_pair_family(PAIR["gamma"])
    training = TrainingResult.load(training_path)
    units = family.tasks[0].utility_form
    xi = float(training.safe_margin.min())
    L = simulation_lemma_constant(PAIR["gamma"])
    out = []
    for index, seed in zip(tasks, seeds, strict=True):
        algorithm = SafePCE(training, units, PAIR["horizon"], preset=THEORY, eps=PAIR["eps"],
                            delta=PAIR["delta"])
        task = family.tasks[int(index)]
        record = run_test_phase(algorithm, task, n_episodes, PAIR["horizon"], seed=int(seed))
        tried = record.log["candidate_order"]
        v_s = algorithm.v_s[tried]
        alpha_1 = [mixture_weights(v, PAIR["eps"], L, PAIR["gamma"], 1)[1] for v in v_s]
        bound = theorem_4_2_terms(n_episodes, PAIR["delta"], PAIR["eps"], PAIR["gamma"], xi,
                                  len(tried), v_s, alpha_1).total
        # the most any run could lose: V* - min_pi V_r(pi) (= V*, the safe action pays 0)
        worst = float(units.reward_value_to_paper(record.optimal_value)) * n_episodes
        out.append({"regret": float(record.cumulative_regret[-1] / units.reward_scale),
                    "bound": bound, "worst_possible": worst,
                    "violations": int(np.count_nonzero(record.violated)),
                    "eliminations": sum(e["event"] == "eliminate"
                                        for e in record.log["events"]),
                    "tried": len(tried), "safe_margins": v_s.tolist(),
                    "first_weights": list(alpha_1),
                    "curve": (record.cumulative_regret[:: max(1, n_episodes // 200)]
                              / units.reward_scale).tolist()})
    return out


def claim_theorem_4_2(context: VerifyContext) -> list[Claim]:
    """Theorem 4.2: App. E's bound against the largest regret its events allow, attacked by the
    falsification engine (bounds.falsify_safety), and Safe-PCE [theory] runs on the slack pair."""
    from .falsify_safety import THEOREM_4_2

    return [falsified(context, THEOREM_4_2), *_theorem_4_2_runs(context)]


def claim_corollary_f_1(context: VerifyContext) -> list[Claim]:
    """Corollary F.1's explicit reward-regret bound (App. F, p. 26) for PCE with eliminated
    candidates, attacked by the falsification engine (bounds.falsify_safety): refuted."""
    from .falsify_safety import COROLLARY_F_1

    return [falsified(context, COROLLARY_F_1)]


def _theorem_4_2_runs(context: VerifyContext) -> list[Claim]:
    """Theorem 4.2 on runs: on the slack pair the explicit App. E bound is below K (V* - min V_r)
    at K = 1e6, so a run with too much regret would fail it (the realised regret stays far below
    the bound: largest regret / bound 0.042)."""
    family = tabular.distributions.slack_pair_family(PAIR["gamma"])
    training = train(family, DistanceCoverage(PAIR["eps"]), PAIR["delta"], seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)
    path = training.save(context.out / "pair_training.npz")
    n_runs, n_episodes = (40, 1_000_000) if context.quick else (400, 2_000_000)
    root = np.random.SeedSequence(13)
    task_seed, run_seed = root.spawn(2)
    tasks = np.random.default_rng(task_seed).integers(0, 2, n_runs)
    seeds = run_seed.generate_state(n_runs, np.uint32)
    chunk = max(1, math.ceil(n_runs / (2 * context.workers)))
    jobs = [(str(path), tasks[i:i + chunk], seeds[i:i + chunk], n_episodes)
            for i in range(0, n_runs, chunk)]
    runs = map_runs(_pair_runs, jobs, context.workers)
    xi = float(training.safe_margin.min())
    context.figures["regret_envelope"] = plot_regret_envelope(
        runs, xi, n_episodes, PAIR["delta"], PAIR["eps"], PAIR["gamma"])
    vacuous = max(r["bound"] / r["worst_possible"] for r in runs)
    below = all(r["regret"] <= r["bound"] for r in runs)
    return [Claim(
        "Theorem 4.2: regret <= the explicit bound of App. E in every run, where it can bind",
        below and vacuous < 1 and not any(r["violations"] for r in runs), len(runs),
        min(r["bound"] - r["regret"] for r in runs),
        f"slack pair (gamma {PAIR['gamma']}, cover radius {PAIR['eps']}), K = {n_episodes}, "
        f"paper units, bound with each run's E, v_(l,s), alpha_1; largest bound / (K (V* - "
        f"min V_r)) = {vacuous:.3f} (< 1: not vacuous); largest regret / bound = "
        f"{max(r['regret'] / r['bound'] for r in runs):.3f}; runs eliminating "
        f"{sum(r['eliminations'] > 0 for r in runs)}/{len(runs)}")]


def claim_scaled_preset(context: VerifyContext) -> list[Claim]:
    """The scaled preset: shrink the worst-case constants until safety breaks."""
    _, _, path = _runnable(context)
    factors = ([1.0, 0.1, 0.01, 0.003, 0.001, 0.0003] if context.quick
               else [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001])
    sweep = []
    for f in factors:
        part = runnable_runs(path, 40 if context.quick else 400, 20_000, seed=11, scale=f,
                             workers=context.workers)
        rate_f = violation_rate(sum(r["violations"] > 0 for r in part), len(part))
        sweep.append({"scale": f, **rate_f,
                      "mean_regret": float(np.mean([r["regret"] for r in part]))})
    context.figures["scaled_sweep"] = plot_scaled_sweep(sweep)
    breaks = [s["scale"] for s in sweep if s["violating_runs"] > 0]
    theory = next(s for s in sweep if s["scale"] == 1.0)
    return [Claim(
        "scaled preset: f = 1 (the theory constants) never violates; where smaller f breaks",
        theory["violating_runs"] == 0, sum(s["runs"] for s in sweep),
        max(breaks) if breaks else 0.0,
        "passed iff no run at f = 1 violates (Lemma 4.5 on a fresh sample); worst_margin holds "
        "the largest factor with any violating run (0: none violated); "
        + "; ".join(f"f={s['scale']:g}: {s['violating_runs']}/{s['runs']} runs violate, "
                    f"mean regret {s['mean_regret']:.0f}" for s in sweep))]


def claim_hard_family(context: VerifyContext) -> list[Claim]:
    """App. G's hard family on fixed settings and slope grids, and the lower bound's premise
    (no policy good on both M_0 and M_i) attacked over constants and policies."""
    from .falsify_hard import HARD_DISJOINT

    claims, curves = hard_family_claims(context.quick)
    context.figures["lower_bound_slopes"] = plot_lower_bound_slopes(curves)
    return [*claims, falsified(context, HARD_DISJOINT)]


def claim_published_safety(context: VerifyContext) -> list[Claim]:
    """The paper's experiment: Safe-PCE with the authors' constants on the published tasks."""
    settings = ExperimentSettings()
    training, distribution = experiment_training(settings)
    violating = 0
    worst = math.inf
    for i, noise in enumerate(PAPER_TEST_TASKS):
        algorithm = make_algorithm("safe-pce", training, distribution, 600, settings.delta)
        record = run_test_phase(algorithm, tabular.gridworld(noise), 40_000, 600,
                                seed=run_seed(0, i))
        violating += bool(record.violated.any())
        worst = min(worst, record.budget - float(record.cost_value.max()))
    return [Claim(
        "Section 6: Safe-PCE [paper-experiment] never violates on the ten published tasks",
        violating == 0, len(PAPER_TEST_TASKS), worst,
        f"{violating}/10 runs violate (cost units); the tuned constants' per-stage cost width "
        "sqrt(300/n) + 0.01 >= 0.25 exceeds the slack/4 that App. D's induction needs",
        kind="paper-statement")]


def claim_sandwich(context: VerifyContext) -> list[Claim]:
    """Safe-PCE [theory]'s sample complexity against Theorem 5.1 and App. E on the hard family,
    measured as the theorems count it (bounds.sandwich): one claim per parameter, whose status is
    the rate check's; writes sandwich.csv, sandwich_rates.csv and sandwich_runs.csv."""
    rows, rate_rows, records = sandwich(
        context.out, context.quick, context.workers, context.progress,
        store=context.out / "store" / "sandwich", engine=context.engine,
        scheduler=context.scheduler)
    write_table(context.out / "sandwich.csv", rows)
    write_table(context.out / "sandwich_rates.csv", rate_rows)
    write_table(context.out / "sandwich_runs.csv", records)
    context.figures["sandwich"] = plot_sandwich(rows, rate_rows)
    claims = []
    for rate in rate_rows:
        name = rate["parameter"]
        mine = [r for r in rows if r["parameter"] == name and r["task_type"] == "D"]
        null = [r for r in rows if r["parameter"] == name and r["task_type"] == "null"]
        cells = "; ".join(
            f"{name}={r['value']:.4g}: (1-delta) quantile {r['quantile_1_minus_delta']:.3g} "
            f"[{r['quantile_ci_low']:.3g}, {r['quantile_ci_high']:.3g}] <= upper "
            f"{r['upper_bound']:.3g}; loop samples on M_0 {n['gate_samples_mean']:.3g} >= lower "
            f"{n['lower_bound']:.3g} (censored {r['censored_runs']}/{r['runs']}, violating "
            f"{r['violating_runs']})" for r, n in zip(mine, null, strict=True))
        note = (f"transitions; exponents: quantile {rate['quantile_exponent']:.2f} "
                f"[{rate['quantile_ci_low']:.2f}, {rate['quantile_ci_high']:.2f}], median "
                f"{rate['median_exponent']:.2f}, upper bound {rate['upper_bound_exponent']:.2f}; "
                f"loop samples on M_0 {rate['null_visits_exponent']:.2f} "
                f"[{rate['null_visits_ci_low']:.2f}, {rate['null_visits_ci_high']:.2f}], lower "
                f"bound {rate['lower_bound_exponent']:.2f}; theorem {rate['theorem_exponent']:g}"
                + (f"; FAILED: {rate['reasons']}" if rate["status"] == "failed" else "")
                + f"; {cells}")
        margin = min((r["upper_bound"] / r["quantile_1_minus_delta"] for r in mine
                      if math.isfinite(r["quantile_1_minus_delta"])), default=math.nan)
        claims.append(Claim(
            f"sandwich: {name}: (1-delta) quantile <= App. E, loop samples on M_0 >= Theorem "
            "5.1, exponents within the bounds', no violation",
            rate["status"] == "passed", sum(r["runs"] for r in mine) + sum(
                r["runs"] for r in null), margin, note,
            inconclusive=rate["status"] == "inconclusive"))
    return claims


def _certified_runs(args) -> list[dict]:
    """Worker: certified Safe-PCE runs on the runnable or the hard family (test tasks from D)."""
    which, training_path, thetas, seeds, n_episodes, horizon = args
    from safepce.theory.algorithms.safe_pce_certified import CertifiedSafePCE

    family = (runnable_family(RUNNABLE["seed"], gamma=RUNNABLE["gamma"]) if which == "runnable"
              else certified_hard_family().distribution)
    training = TrainingResult.load(training_path)
    out = []
    for theta, seed in zip(thetas, seeds, strict=True):
        task = family.build([theta])
        algorithm = CertifiedSafePCE(training, family, horizon, CERTIFIED)
        record = run_test_phase(algorithm, task, n_episodes, horizon, seed=int(seed))
        out.append({"theta": float(theta), "seed": int(seed),
                    "violated": bool(record.violated.any()),
                    "assumption_holds": bool(tabular.evaluate(task, training.safe_policy)
                                             .cost_value <= task.budget),
                    "max_cost_value": float(record.cost_value.max()), "budget": record.budget,
                    "final_alpha": float(record.log["final_alpha"]),
                    "flags": record.log["flags"],
                    "regret_per_episode": float(record.cumulative_regret[-1] / n_episodes)})
    return out


#: the hard family of the certified claim: App. G (routing tree) with m = 2 (4 tasks), gamma 0.8,
#: xi 0.4, eps 0.2, c1 2, c3 20; episodes of H = 40
CERTIFIED_HARD = {"m": 2, "gamma": 0.8, "xi": 0.4, "eps": 0.2, "c1": 2.0, "c3": 20.0}
CERTIFIED_HARD_HORIZON = 40


def certified_hard_family():
    """The certified claim's hard family (:data:`CERTIFIED_HARD`)."""
    return hard_family(**CERTIFIED_HARD)


def certified_hard_training() -> TrainingResult:
    """Algorithm 1 on :func:`certified_hard_family` (distance oracle at radius 1e-5, worst-case
    O_s, delta 0.01)."""
    return train(certified_hard_family().distribution, DistanceCoverage(1e-5), 0.01, seed=0,
                 safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)


def claim_certified(context: VerifyContext) -> list[Claim]:
    """Certified Safe-PCE (theory.algorithms.safe_pce_certified): no infeasible deployed policy
    on tasks drawn from D of the runnable and the hard family."""
    n_runs = 200 if context.quick else 10_000
    claims = []
    _, _, runnable_path = _runnable(context)
    hard_path = context.once("certified_hard_training", lambda: certified_hard_training().save(
        context.out / "certified_hard_training.npz"))
    for which, path, episodes, horizon in (("runnable", runnable_path, 2000, RUNNABLE["horizon"]),
                                           ("hard", hard_path, 2000,
                                            CERTIFIED_HARD_HORIZON)):
        root = np.random.SeedSequence([2026, 17, len(which)])
        theta_seed, run_seed = root.spawn(2)
        if which == "runnable":
            thetas = np.random.default_rng(theta_seed).uniform(0, 1, n_runs)
        else:
            thetas = np.random.default_rng(theta_seed).integers(
                0, 2**CERTIFIED_HARD["m"], n_runs).astype(float)
        seeds = run_seed.generate_state(n_runs, np.uint32)
        chunk = max(1, math.ceil(n_runs / (4 * context.workers)))
        jobs = [(which, str(path), thetas[i:i + chunk], seeds[i:i + chunk], episodes, horizon)
                for i in range(0, n_runs, chunk)]
        runs = map_runs(_certified_runs, jobs, context.workers, context.progress,
                        f"certified Safe-PCE runs ({which})")
        held = [r for r in runs if r["assumption_holds"]]
        rate = violation_rate(sum(r["violated"] for r in held), len(held))
        claims.append(Claim(
            f"certified Safe-PCE: every deployed policy is feasible ({which} family, tasks "
            "from D)", rate["violating_runs"] == 0 and len(held) > 0, len(runs),
            min(r["budget"] - r["max_cost_value"] for r in held),
            f"K = {episodes}, H = {horizon}, delta {CERTIFIED.delta:g}; runs with a violation "
            f"where pi_s is "
            f"feasible {rate['violating_runs']}/{rate['runs']} (95% upper "
            f"{rate['high']:.5f}); {len(runs) - len(held)} runs outside Assumption 3.3; mean "
            f"final alpha {np.mean([r['final_alpha'] for r in runs]):.3f}, mean regret per "
            f"episode {np.mean([r['regret_per_episode'] for r in runs]):.4f}"))
    return claims


def claim_erratum(context: VerifyContext) -> list[Claim]:
    """The erratum (bounds.erratum): every finding measured again; writes findings.csv. A
    finding that no longer holds fails its claim (the erratum must then be corrected)."""
    from .erratum import measure_findings

    rows = measure_findings(quick=context.quick)
    write_table(context.out / "findings.csv", rows)
    return [Claim(f"erratum: {row['name']} ({row['where']}): {row['statement']}", row["holds"],
                  1, math.nan, row["measured"]) for row in rows if row["test"]]


@dataclass(frozen=True)
class ClaimCheck:
    """One row of :data:`CLAIMS`: a name, the paper's label, and the function checking it."""

    name: str
    paper_label: str
    check: object


#: every claim ``verify`` checks, in order
CLAIMS: tuple[ClaimCheck, ...] = (
    ClaimCheck("lemma-c3", "Lemma C.3", claim_lemma_c3),
    ClaimCheck("eq-6", "Eq. 6 / App. D", claim_eq_6),
    ClaimCheck("eq-30", "Eq. 30 / App. E", claim_eq_30),
    ClaimCheck("lemma-3.5", "Lemma 3.5", claim_lemma_3_5),
    ClaimCheck("lemma-c2", "Lemma C.2", claim_lemma_c2),
    ClaimCheck("lemma-c4", "Lemma C.4", claim_lemma_c4),
    ClaimCheck("lemma-4.5", "Lemma 4.5", claim_lemma_4_5),
    ClaimCheck("theorem-4.2", "Theorem 4.2 / App. E", claim_theorem_4_2),
    ClaimCheck("corollary-f.1", "Corollary F.1 / App. F", claim_corollary_f_1),
    ClaimCheck("sandwich", "Theorem 5.1 <= sample complexity <= App. E", claim_sandwich),
    ClaimCheck("scaled-preset", "Lemma 4.5 (constants shrunk)", claim_scaled_preset),
    ClaimCheck("hard-family", "Theorem 5.1, App. G", claim_hard_family),
    ClaimCheck("published-safety", "Section 6", claim_published_safety),
    ClaimCheck("certified", "Certified Safe-PCE (README)", claim_certified),
    ClaimCheck("erratum", "Erratum (README)", claim_erratum),
)


def run_verify(out: Path, quick: bool = True, workers: int = 2, progress: bool = True,
               claims: tuple[ClaimCheck, ...] | None = None,
               names: tuple[str, ...] = (), engine: str = "local",
               scheduler: str | None = None) -> tuple[list[Claim], dict]:
    """Run every claim function of ``claims`` (default :data:`CLAIMS`), only those named in
    ``names`` when it is not empty; returns (claims, figures by name). ``engine``/``scheduler``:
    where the sandwich's runs go (local processes or Dask, :func:`safepce.theory.sweep.
    make_executor`)."""
    context = VerifyContext(Path(out), quick=quick, workers=workers, progress=progress,
                            engine=engine, scheduler=scheduler)
    store = Path(out) / "store"
    store.mkdir(parents=True, exist_ok=True)
    results: list[Claim] = []
    selected = [check for check in (CLAIMS if claims is None else claims)
                if not names or check.name in names]
    for check in tqdm(selected, desc="verify", unit="claim", disable=not progress):
        # resumable: each claim's records and figures are kept as soon as it is done
        path = store / f"{check.name}.pkl"
        if path.exists():
            try:
                claims_done, figures = pickle.loads(path.read_bytes())
            except Exception as exc:   # noqa: BLE001 (any unpickling failure: a damaged file)
                raise InputError(f"{path}: not a readable claim record ({type(exc).__name__}); "
                                 "remove it to rerun that claim") from None
        else:
            before = set(context.figures)
            claims_done = check.check(context)
            figures = {k: v for k, v in context.figures.items() if k not in before}
            payload = pickle.dumps((claims_done, figures))
            atomic_write(path, lambda handle, data=payload: handle.write(data), binary=True)
        context.figures.update(figures)
        results.extend(claims_done)
    return results, context.figures


def claims_table(claims: list[Claim]) -> str:
    rows = [f"{'claim':76s} {'runs':>7s} {'status':>8s} {'worst margin':>13s}"]
    for c in claims:
        rows.append(f"{c.claim[:76]:76s} {c.runs:7d} {c.status:>8s} {c.worst_margin:13.4g}")
    return "\n".join(rows)


def claims_json(claims: list[Claim]) -> list[dict]:
    """One flat record per claim, with its computed ``status``."""
    return [asdict(c) | {"status": c.status} for c in claims]


__all__ = ["CLAIMS", "Claim", "ClaimCheck", "VerifyContext", "VerifySettings", "claims_json",
           "claims_table", "run_verify", "corollary_4_3_samples", "theorem_4_2_rate"]
