"""Safe Meta-RL's test-time adaptation (Xu & Zhu, NeurIPS 2025), with the authors' settings (read
from their code; the paper's App. H.1 describes only Algorithm 1's oracles).

Each iteration runs the current policy pi for a batch of episodes, estimates Monte-Carlo
advantages A_r and A_k (in the preset's units, :mod:`safepce.theory.algorithms.baselines`), the
empirical
normalised discounted state occupancy d and the cost value V_k(pi), and takes one KL-regularised
step, the closed-form solution of

    max_pi'  (1/(1-gamma)) E_{s~d} [ E_{a~pi'} A_r(s, a) - lam KL(pi'(.|s) || pi(.|s)) ]
    s.t.     g(pi') = V_k(pi) + (1/(1-gamma)) E_{s~d} E_{a~pi'} A_k(s, a)
                      + lam_c E_{s~d} KL(pi'(.|s) || pi(.|s)) <= b,

namely, for a dual variable u >= 0, ``pi_u(a|s) ∝ pi(a|s) exp((A_r - u A_k) / (lam + (1-gamma) u
lam_c))``. The dual variable follows ``dual_iterations`` projected-gradient steps
``u <- max(0, u + dual_step (g(pi_u) - b))`` from u = 0 or from the previous iteration's u (the
dual function's derivative is ``b - g(pi_u)``). Pairs never visited in the batch get advantage 0
(pi is kept there).

Presets (every number is a field of :class:`SafeMetaRLPreset`):

* ``paper-experiment`` (key ``safe-meta-rl``): what the authors ran for the paper's Figure 2
  (their code, facts recorded for the toolkit): start from pi_s itself, raw task units (reward
  and cost as the task has them), every-visit Monte-Carlo Q and V with ``A = Q - V`` on the pairs
  taken and 0 elsewhere (:func:`safepce.theory.estimators.every_visit_q`), the dual reset to u = 0
  at
  every adaptation, 30 projected steps of size 1.0, batches of 50, lam = lam_c = 0.2, no guard.
  Tilting keeps zeros at zero, so from a (nearly) deterministic pi_s this learner can only move
  where pi_s randomises: the figure's curve is essentially pi_s's.
* ``smoothed-start`` (key ``safe-meta-rl-smoothed-start``): the authors' settings with only the
  start changed to the high-entropy safe start (eta = 0.04 on the experiment): the start's effect
  alone (erratum ``safe-meta-rl-start``).
* ``smoothed`` (key ``safe-meta-rl-smoothed``): our earlier reading of the paper's text: the
  high-entropy safe start of :func:`safepce.theory.baselines.high_entropy_safe_start` (so that
  tilting
  can move the policy anywhere), scaled cost form, first-visit Q with a policy-weighted baseline,
  the dual warm-started from the previous adaptation with step 100 per unit of scaled cost. Kept
  because it is what the method does once it can move: it violates in most runs (docs/experiment.md,
  erratum: "Safe Meta-RL's sensitivity to the start policy").

Both take every step (``guard=True`` instead keeps pi whenever the linearised constraint fails
at the final u). :func:`exact_statistics` gives the same inputs computed exactly from a known
model, which separates what Monte-Carlo noise does from what the step rule does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from safepce import tabular
from safepce.tabular import CMDP

from ..estimators import every_visit_q, first_visit_q
from ..harness import Deployment
from ..training import TrainingResult
from .baselines import (
    BaselineInputError,
    Scales,
    TrajectoryLearner,
    discounted_state_visits,
    positive,
    resolve_preset,
)


@dataclass(frozen=True)
class SafeMetaRLPreset:
    """Every number of a Safe Meta-RL preset (see the module docstring)."""

    name: str
    batch: int = 50
    lam: float = 0.2
    lam_c: float = 0.2
    dual_iterations: int = 30
    dual_step: float = 1.0
    dual_reset: bool = True
    estimator: str = "every-visit"
    start: str = "pi_s"
    start_temperature: float = 8.0
    units: str = "raw"
    margin_fraction: float = 0.5
    guard: bool = False


#: what the authors ran (pi_s start, raw units, every-visit Q and V, dual reset, step 1.0)
SAFE_META_RL_EXPERIMENT = SafeMetaRLPreset("paper-experiment")
#: the authors' settings with one change: the start smoothed towards uniform (eta 0.04 on the
#: experiment), so that its effect alone is measured
SAFE_META_RL_SMOOTHED_START = SafeMetaRLPreset("smoothed-start", start="smoothed")
#: our earlier variant: smoothed start, scaled units, first-visit Q, warm dual with step 100
SAFE_META_RL_SMOOTHED = SafeMetaRLPreset(
    "smoothed", dual_step=100.0, dual_reset=False, estimator="first-visit", start="smoothed",
    units="scaled")


def advantages(q: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """``Q(s, a) - sum_b pi(b|s) Q(s, b)`` with the baseline renormalised over the visited
    actions of s; 0 where Q(s, a) is unknown (NaN) or s was never visited."""
    known = ~np.isnan(q)
    weights = np.where(known, policy, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    baseline = np.sum(weights * np.nan_to_num(q), axis=1, keepdims=True) / np.where(
        total > 0, total, 1.0)
    return np.where(known, q - baseline, 0.0)


def tilted_policy(policy: np.ndarray, adv_reward: np.ndarray, adv_cost: np.ndarray, u: float,
                  lam: float, lam_c: float, gamma: float) -> np.ndarray:
    """``pi_u(a|s) ∝ pi(a|s) exp((A_r - u A_k) / (lam + (1-gamma) u lam_c))`` (the closed form)."""
    temperature = lam + (1 - gamma) * u * lam_c
    with np.errstate(divide="ignore"):
        logits = np.log(policy) + (adv_reward - u * adv_cost) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    z = np.exp(logits)
    return z / z.sum(axis=1, keepdims=True)


def kl_per_state(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """KL(new(.|s) || old(.|s)) for every state (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(new > 0, new * (np.log(new) - np.log(old)), 0.0)
    return terms.sum(axis=1)


def linearised_cost(new: np.ndarray, old: np.ndarray, cost_value: float, adv_cost: np.ndarray,
                    occupancy: np.ndarray, lam_c: float, gamma: float) -> float:
    """g(pi') of the module docstring: first-order cost of pi' around pi plus the KL term."""
    first_order = occupancy @ np.sum(new * adv_cost, axis=1) / (1 - gamma)
    return float(cost_value + first_order + lam_c * occupancy @ kl_per_state(new, old))


def exact_statistics(task: CMDP, policy: np.ndarray, scales: Scales
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(A_r, A_k, d, V_k) of ``policy`` on ``task`` computed exactly, scaled cost form: what the
    Monte-Carlo estimates of one batch estimate (H -> infinity)."""
    exact = tabular.evaluate(task, policy)
    q_r = task.r + task.discounted_next_values(exact.reward_state_values)
    cost_values = np.reshape(exact.cost_state_values, (task.n_states, -1))[:, 0]
    q_k = task.costs[..., 0] + task.discounted_next_values(cost_values)
    adv_r = (q_r - exact.reward_state_values[:, None]) / scales.reward_max
    adv_k = (q_k - cost_values[:, None]) / scales.cost_max
    occupancy = exact.occupancy.sum(axis=1)          # normalised: sums to 1
    return adv_r, adv_k, occupancy, float(exact.cost_value) / scales.cost_max


def adaptation_step(policy: np.ndarray, adv_reward: np.ndarray, adv_cost: np.ndarray,
                    occupancy: np.ndarray, cost_value: float, budget: float, lam: float,
                    lam_c: float, gamma: float, u: float, dual_iterations: int,
                    dual_step: float) -> tuple[np.ndarray, float, float]:
    """One Safe Meta-RL adaptation (module docstring) from given statistics, any units that
    agree: (pi_u, u, g(pi_u)) after ``dual_iterations`` projected dual steps from ``u``.

    The steps run in one compiled loop (:func:`_dual_ascent`) computing :func:`tilted_policy`
    and :func:`linearised_cost` per step; it agrees with composing those two to ~1e-15
    (exp, log and dot products in compiled code round in their own way; tested)."""
    log_policy = np.log(np.where(policy > 0, policy, 1.0))
    candidate = np.empty_like(policy)
    u, g = _dual_ascent(policy, log_policy, policy > 0, adv_reward, adv_cost, occupancy,
                        float(cost_value), float(budget), float(lam), float(lam_c), float(gamma),
                        float(u), int(dual_iterations), float(dual_step), candidate)
    return candidate, u, g


@numba.njit(cache=True)
def _tilt_and_cost(policy, log_policy, support, adv_reward, adv_cost, occupancy, cost_value,
                   lam, lam_c, gamma, u, out):
    """out = tilted_policy(u); returns linearised_cost(out) (both as in their numpy forms)."""
    temperature = lam + (1 - gamma) * u * lam_c
    first_order = 0.0
    kl = 0.0
    for s in range(policy.shape[0]):
        top = -np.inf
        for a in range(policy.shape[1]):
            if support[s, a]:
                logit = log_policy[s, a] + (adv_reward[s, a] - u * adv_cost[s, a]) / temperature
                out[s, a] = logit
                top = max(top, logit)
        total = 0.0
        for a in range(policy.shape[1]):
            if support[s, a]:
                out[s, a] = np.exp(out[s, a] - top)
                total += out[s, a]
            else:
                out[s, a] = 0.0
        linear = 0.0
        divergence = 0.0
        for a in range(policy.shape[1]):
            out[s, a] /= total
            linear += out[s, a] * adv_cost[s, a]
            if out[s, a] > 0:
                divergence += out[s, a] * (np.log(out[s, a]) - log_policy[s, a])
        first_order += occupancy[s] * linear
        kl += occupancy[s] * divergence
    return cost_value + first_order / (1 - gamma) + lam_c * kl


@numba.njit(cache=True)
def _dual_ascent(policy, log_policy, support, adv_reward, adv_cost, occupancy, cost_value,
                 budget, lam, lam_c, gamma, u, iterations, step, out):
    """``iterations`` projected steps u <- max(0, u + step (g(pi_u) - b)); then pi_u in out."""
    for _ in range(iterations):
        g = _tilt_and_cost(policy, log_policy, support, adv_reward, adv_cost, occupancy,
                           cost_value, lam, lam_c, gamma, u, out)
        u = max(0.0, u + step * (g - budget))
    g = _tilt_and_cost(policy, log_policy, support, adv_reward, adv_cost, occupancy, cost_value,
                       lam, lam_c, gamma, u, out)
    return u, g


class SafeMetaRL(TrajectoryLearner):
    """One closed-form safe adaptation step per batch (module docstring)."""

    name = "safe-meta-rl"

    def __init__(self, training: TrainingResult, tasks: list[CMDP], horizon: int,
                 preset: SafeMetaRLPreset = SAFE_META_RL_EXPERIMENT,
                 start_task: CMDP | None = None, **overrides):
        preset = resolve_preset(preset, SafeMetaRLPreset, overrides)
        for field_name, value in (("batch", preset.batch),
                                  ("dual_iterations", preset.dual_iterations)):
            positive(field_name, value, integer=True)
        if preset.batch < 2:
            raise BaselineInputError(f"batch: expected at least 2 episodes; got {preset.batch}")
        for field_name, value in (("lam", preset.lam), ("lam_c", preset.lam_c),
                                  ("dual_step", preset.dual_step)):
            positive(field_name, value)
        if preset.estimator not in ("every-visit", "first-visit"):
            raise BaselineInputError(f"estimator: expected 'every-visit' or 'first-visit'; got "
                                     f"{preset.estimator!r}")
        super().__init__(training, tasks, horizon, preset, start_task)
        self.batch, self.lam, self.lam_c = int(preset.batch), float(preset.lam), \
            float(preset.lam_c)
        self.dual_iterations, self.dual_step = int(preset.dual_iterations), \
            float(preset.dual_step)
        self.guard = bool(preset.guard)

    def reset(self, n_episodes: int, seed=None) -> None:
        super().reset(n_episodes, seed)
        self.updates = 0
        self.u = 0.0

    def deployment(self) -> Deployment:
        return Deployment((self.policy,), np.ones(1), (("safe-meta-rl", self.updates),),
                          self.batch)

    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray,
                trajectories=None) -> int:
        size = reward_returns.size
        self.episode += size
        if size == self.batch:
            self._adapt(cost_returns, trajectories)
        return size

    def _advantages(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """(A_r, A_k) in the learner's units, by the preset's estimator."""
        S, A = self.policy.shape
        if self.preset_object.estimator == "every-visit":
            return (every_visit_q(batch, S, A, "reward").advantages() / self.reward_unit,
                    every_visit_q(batch, S, A, "cost").advantages() / self.cost_unit)
        q_r = first_visit_q(batch, S, A, "reward").q / self.reward_unit
        q_k = first_visit_q(batch, S, A, "cost").q / self.cost_unit
        return advantages(q_r, self.policy), advantages(q_k, self.policy)

    def _adapt(self, cost_returns: np.ndarray, batch) -> None:
        adv_r, adv_k = self._advantages(batch)
        occupancy = discounted_state_visits(batch, self.policy.shape[0])
        cost_value = float(np.mean(cost_returns)) / self.cost_unit
        start_u = 0.0 if self.preset_object.dual_reset else self.u
        candidate, u, g = adaptation_step(self.policy, adv_r, adv_k, occupancy, cost_value,
                                          self.budget, self.lam, self.lam_c, self.scales.gamma,
                                          start_u, self.dual_iterations, self.dual_step)
        self.u = u
        self.iteration += 1
        accepted = g <= self.budget or not self.guard
        if accepted:
            self.policy = candidate
            self.updates += 1
        if self.iteration % 20 == 0:
            self.events.append({"episode": self.episode, "iteration": self.iteration, "u": u,
                                "linearised_cost": g * self.cost_unit,
                                "cost_estimate": cost_value * self.cost_unit,
                                "accepted": bool(accepted)})

    def log(self) -> dict:
        p = self.preset_object
        return {"preset": self.preset, "batch": self.batch, "lam": self.lam,
                "lam_c": self.lam_c, "dual_iterations": self.dual_iterations,
                "dual_step": self.dual_step, "dual_reset": p.dual_reset,
                "estimator": p.estimator, **self.start_log(),
                "iterations": self.iteration, "updates": self.updates, "events": self.events}
