"""LB-SGD at test time (Ni & Kamgarpour, AISTATS 2025; log-barrier SGD of Usmanova et al.).

A softmax policy ``pi_theta(a|s) ∝ exp(theta[s, a])`` climbs the log-barrier objective
``B(theta) = V_r(theta) + eta log(b - V_k(theta))`` (in the preset's units,
:mod:`safepce.theory.algorithms.baselines`) with REINFORCE estimates of grad V_r and grad V_k from
one
batch of episodes per iteration:

    g_t = grad V_r - eta grad V_k / s_t,     theta_{t+1} = theta_t + gamma_t g_t,

where ``s_t = b - V_k_hat - z SE`` is a lower confidence bound on the slack of the current policy
(z = ``confidence``). The certified step (``certified=True``) keeps the next iterate feasible when
V_k is M-smooth in theta:

    gamma_t = min(step, s_t / (2 |<grad V_k, g_t>| + sqrt(s_t M) ||g_t||)),

because then ``gamma_t |<grad V_k, g_t>| <= s_t / 2`` and ``M gamma_t^2 ||g_t||^2 / 2 <= s_t / 2``
(the descent lemma bounds the cost increase by their sum). If the estimated slack is not positive
the iterate does not move. M defaults to ``8 / (1 - gamma)^3``, the smoothness of a value with
per-step signal in [0, 1] under the softmax parametrisation (Mei et al., 2020, Lemma 7).

Presets (every number is a field of :class:`LBSGDPreset`):

* ``paper-experiment`` (key ``lb-sgd``): what the authors ran for the paper's Figure 2 (their
  code, facts recorded for the toolkit): start from the entropy-regularised constrained optimum
  of the task pi_s comes from (the noise-0.4 gridworld task) at temperature 8
  (:func:`safepce.tabular.solve_soft`; V_r 37-40 on the ten test tasks), raw task units, REINFORCE,
  the *uncertified* step ``theta += 4 (grad V_r - 0.1 grad V_k / s)`` with
  ``s = max(b - mean cost of the batch, 0.05)`` (no confidence term, so the barrier never stops
  a step), one batch of 500 episodes, then 3,000 per batch.
* ``certified`` (key ``lb-sgd-certified``): the method as its analysis requires, our earlier
  variant: scaled cost form, the high-entropy safe start near pi_s
  (:func:`safepce.theory.baselines.high_entropy_safe_start`), the lower confidence bound on the
  slack
  (2 standard errors) and the certified step above capped at 4; batches of 500 for the first
  5,000 episodes, then 3,000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safepce.tabular import CMDP

from ..gradients import reinforce_gradient
from ..harness import Deployment
from ..training import TrainingResult
from .baselines import BaselineInputError, TrajectoryLearner, positive, resolve_preset


@dataclass(frozen=True)
class LBSGDPreset:
    """Every number of an LB-SGD preset (see the module docstring); ``smoothness`` None is
    the softmax bound 8/(1-gamma)^3; ``slack_floor`` None leaves the slack unclipped."""

    name: str
    eta: float = 0.1
    step: float = 4.0
    batches: tuple[int, int] = (500, 3000)
    switch_episode: int = 500
    certified: bool = False
    slack_floor: float | None = 0.05
    smoothness: float | None = None
    confidence: float = 0.0
    start: str = "soft"
    start_temperature: float = 8.0
    units: str = "raw"
    margin_fraction: float = 0.5


#: what the authors ran (soft start at temperature 8, raw units, uncertified step 4)
LB_SGD_EXPERIMENT = LBSGDPreset("paper-experiment")
#: the certified variant (scaled units, smoothed start, confidence bound, certified step)
LB_SGD_CERTIFIED = LBSGDPreset(
    "certified", switch_episode=5000, certified=True, slack_floor=None, confidence=2.0,
    start="smoothed", units="scaled")


def barrier_step(grad_reward: np.ndarray, grad_cost: np.ndarray, slack: float, eta: float,
                 step: float, smoothness: float) -> tuple[float, np.ndarray]:
    """(gamma_t, g_t) of the module docstring: the log-barrier ascent direction
    ``g = grad V_r - eta grad V_k / slack`` and the largest step, capped at ``step``, that the
    descent lemma certifies keeps an M-smooth cost below the budget. (0, g) if slack <= 0."""
    if not slack > 0:
        return 0.0, np.zeros_like(grad_reward)
    g = grad_reward - eta * grad_cost / slack
    norm = float(np.linalg.norm(g))
    if norm == 0:
        return 0.0, g
    certified = slack / (2 * abs(float(np.sum(grad_cost * g))) + math.sqrt(slack * smoothness)
                         * norm)
    return min(step, certified), g


class LBSGD(TrajectoryLearner):
    """Log-barrier stochastic gradient ascent on a softmax policy (module docstring)."""

    name = "lb-sgd"

    def __init__(self, training: TrainingResult, tasks: list[CMDP], horizon: int,
                 preset: LBSGDPreset = LB_SGD_EXPERIMENT, start_task: CMDP | None = None,
                 **overrides):
        preset = resolve_preset(preset, LBSGDPreset, overrides)
        for field_name, value in (("eta", preset.eta), ("step", preset.step)):
            positive(field_name, value)
        for field_name, value in (("batches[0]", preset.batches[0]),
                                  ("batches[1]", preset.batches[1]),
                                  ("switch_episode", preset.switch_episode)):
            positive(field_name, value, integer=True)
        if not (isinstance(preset.confidence, (int, float)) and preset.confidence >= 0):
            raise BaselineInputError(f"confidence: expected a number >= 0; got "
                                     f"{preset.confidence!r}")
        if preset.slack_floor is not None:
            positive("slack_floor", preset.slack_floor)
        super().__init__(training, tasks, horizon, preset, start_task)
        gamma = self.scales.gamma
        smoothness = preset.smoothness
        self.smoothness = 8 / (1 - gamma)**3 if smoothness is None else float(smoothness)
        positive("smoothness", self.smoothness)
        self.eta, self.step, self.batches = float(preset.eta), float(preset.step), \
            tuple(preset.batches)
        self.switch_episode, self.confidence = int(preset.switch_episode), \
            float(preset.confidence)

    def reset(self, n_episodes: int, seed=None) -> None:
        super().reset(n_episodes, seed)
        self.logits = np.log(np.maximum(self.start_policy, 1e-300))

    def _batch_size(self) -> int:
        return self.batches[0] if self.episode < self.switch_episode else self.batches[1]

    def deployment(self) -> Deployment:
        return Deployment((self.policy,), np.ones(1), (("lb-sgd", self.iteration),),
                          self._batch_size())

    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray,
                trajectories=None) -> int:
        size = reward_returns.size
        full = size == self._batch_size()
        self.episode += size
        if full and size > 1:
            self._update(cost_returns, trajectories)
        return size

    def _update(self, cost_returns: np.ndarray, batch) -> None:
        preset = self.preset_object
        cost = cost_returns / self.cost_unit
        cost_hat = float(cost.mean())
        slack = self.budget - cost_hat - self.confidence * float(
            cost.std(ddof=1) / math.sqrt(cost.size))
        if preset.slack_floor is not None:
            slack = max(slack, preset.slack_floor / self.cost_unit)
        event = {"episode": self.episode, "iteration": self.iteration, "batch": int(cost.size),
                 "cost_estimate": cost_hat * self.cost_unit,
                 "slack_lower": slack * self.cost_unit}
        if slack <= 0:
            event["step"] = 0.0
            self.events.append(event)
            return
        grad_r = reinforce_gradient(batch, self.logits, "reward")[0] / self.reward_unit
        grad_k = reinforce_gradient(batch, self.logits, "cost")[0] / self.cost_unit
        if preset.certified:
            step, g = barrier_step(grad_r, grad_k, slack, self.eta, self.step, self.smoothness)
        else:
            step, g = self.step, grad_r - self.eta * grad_k / slack
        norm = float(np.linalg.norm(g))
        if step == 0 or norm == 0:
            event["step"] = 0.0
            self.events.append(event)
            return
        self.logits = self.logits + step * g
        self.logits -= self.logits.max(axis=1, keepdims=True)
        z = np.exp(self.logits)
        self.policy = z / z.sum(axis=1, keepdims=True)
        self.iteration += 1
        event.update(step=step, gradient_norm=norm)
        self.events.append(event)

    def log(self) -> dict:
        p = self.preset_object
        return {"preset": self.preset, "eta": self.eta, "step": self.step,
                "batches": list(self.batches), "switch_episode": self.switch_episode,
                "certified": p.certified, "slack_floor": p.slack_floor,
                "smoothness": self.smoothness, "confidence": self.confidence,
                **self.start_log(), "iterations": self.iteration, "events": self.events}
