"""Claims checked on the runnable family (4 states, gamma 0.5, L = 6, where the theory's
constants act) and on the slack pair (Theorem 4.2's bound binds at K ~ 1e6): Lemma 3.5 on
held-out tasks, Lemma 4.5 and the scaled preset on Safe-PCE [theory] runs, Theorem 4.2 on runs
(Ni & Kamgarpour 2026, arXiv:2601.21845)."""

from __future__ import annotations

import math

import numpy as np

from safepce import tabular
from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.distributions import runnable_family
from safepce.theory.algorithms.safe_pce import THEORY, SafePCE, SafePCEPreset, mixture_weights
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.sweep import map_runs
from safepce.theory.training import TrainingResult, check_lemma_3_5, train

from ..covering import covering_number
from ..sample_complexity import violation_rate
from ..upper import theorem_4_2_terms
from .falsified import falsified
from .record import Claim
from .runner import VerifyContext

#: the runnable instance: gamma 0.5 (L = 6), cover radius 0.01 in task distance, delta 0.1
RUNNABLE = {"seed": 0, "gamma": 0.5, "eps": 0.01, "delta": 0.1, "horizon": 40, "xi": 0.5}


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


def runnable_context_training(context: VerifyContext):
    """The runnable family's training (computed once per verify run, saved in the folder):
    (training, family, path)."""
    def compute():
        training, family = runnable_training()
        path = training.save(context.out / "runnable_training.npz")
        return training, family, path
    return context.once("runnable", compute)




def claim_lemma_3_5(context: VerifyContext) -> list[Claim]:
    """Lemma 3.5's items 1 (predicted values) and 2 (pi_s's feasibility) attacked by the
    falsification engine over task pairs where its premise (8L + 18) eps <= xi holds (refuted,
    as Lemma C.3 on which they rest), and every item on held-out tasks of the runnable family."""
    from ..falsify import LEMMA_3_5

    training, family, _ = runnable_context_training(context)
    return [falsified(context, LEMMA_3_5),
            *check_lemma_3_5_claims(training, family, 300 if context.quick else 2000)]




def claim_lemma_4_5(context: VerifyContext) -> list[Claim]:
    """Lemma 4.5.1: App. D's induction attacked by the falsification engine over the schedule's
    inputs (bounds.falsify_safety), and Safe-PCE [theory] runs of the runnable family."""
    from ..falsify_safety import LEMMA_4_5

    return [falsified(context, LEMMA_4_5), *_lemma_4_5_runs(context)]


def _lemma_4_5_runs(context: VerifyContext) -> list[Claim]:
    """Lemma 4.5 on Safe-PCE [theory] runs of the runnable family."""
    _, _, path = runnable_context_training(context)
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
    from ..falsify_safety import THEOREM_4_2

    return [falsified(context, THEOREM_4_2), *_theorem_4_2_runs(context)]


def claim_corollary_f_1(context: VerifyContext) -> list[Claim]:
    """Corollary F.1's explicit reward-regret bound (App. F, p. 26) for PCE with eliminated
    candidates, attacked by the falsification engine (bounds.falsify_safety): refuted."""
    from ..falsify_safety import COROLLARY_F_1

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
    context.add_figure("regret_envelope", "plot_regret_envelope", runs, xi, n_episodes,
                       PAIR["delta"], PAIR["eps"], PAIR["gamma"])
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
    _, _, path = runnable_context_training(context)
    factors = ([1.0, 0.1, 0.01, 0.003, 0.001, 0.0003] if context.quick
               else [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001])
    sweep = []
    for f in factors:
        part = runnable_runs(path, 40 if context.quick else 400, 20_000, seed=11, scale=f,
                             workers=context.workers)
        rate_f = violation_rate(sum(r["violations"] > 0 for r in part), len(part))
        sweep.append({"scale": f, **rate_f,
                      "mean_regret": float(np.mean([r["regret"] for r in part]))})
    context.add_figure("scaled_sweep", "plot_scaled_sweep", sweep)
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

