"""The certified Safe-PCE's claim (beyond the paper): no infeasible deployed policy on tasks
drawn from D of the runnable family and of App. G's hard family."""

from __future__ import annotations

import math

import numpy as np

from safepce import tabular
from safepce.tabular.distributions import runnable_family
from safepce.theory.algorithms.safe_pce_certified import CERTIFIED
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.sweep import map_runs
from safepce.theory.training import TrainingResult, train

from ..hard_instance import hard_family
from ..sample_complexity import violation_rate
from .record import Claim
from .runnable import RUNNABLE, runnable_context_training
from .runner import VerifyContext


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
    _, _, runnable_path = runnable_context_training(context)
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
