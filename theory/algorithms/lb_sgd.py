"""LB-SGD at test time (Ni & Kamgarpour, AISTATS 2025; log-barrier SGD of Usmanova et al.).

A softmax policy ``pi_theta(a|s) ∝ exp(theta[s, a])`` climbs the log-barrier objective
``B(theta) = V_r(theta) + eta log(b - V_k(theta))`` (scaled cost form, :mod:`theory.baselines`)
with REINFORCE estimates of grad V_r and grad V_k from one batch of episodes per iteration:

    g_t = grad V_r - eta grad V_k / s_t,     theta_{t+1} = theta_t + gamma_t g_t,

where ``s_t = b - V_k_hat - z SE`` is a lower confidence bound on the slack of the current policy.
The adaptive step keeps the next iterate feasible when V_k is M-smooth in theta:

    gamma_t = min(step, s_t / (2 |<grad V_k, g_t>| + sqrt(s_t M) ||g_t||)),

because then ``gamma_t |<grad V_k, g_t>| <= s_t / 2`` and ``M gamma_t^2 ||g_t||^2 / 2 <= s_t / 2``
(the descent lemma bounds the cost increase by their sum). If the estimated slack is not positive
the iterate does not move. M defaults to ``8 / (1 - gamma)^3``, the smoothness of a value with
per-step signal in [0, 1] under the softmax parametrisation (Mei et al., 2020, Lemma 7).

Presets. ``paper-experiment`` (the authors' settings, App. H.1): eta = 0.1, step 4, batches of
500 episodes for
the first 5,000 episodes then 3,000 (the switch point is not given in the paper; ours), started
from the high-entropy safe policy of :func:`theory.baselines.high_entropy_safe_start`. The same
numbers are the constructor's defaults; every one is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tabular import CMDP

from ..gradients import reinforce_gradient
from ..harness import Deployment
from ..training import TrainingResult
from .baselines import BaselineInputError, SmoothedStartLearner, positive, resolve_preset


@dataclass(frozen=True)
class LBSGDPreset:
    """Every number of an LB-SGD preset (see the module docstring); ``smoothness`` None is
    the softmax bound 8/(1-gamma)^3."""

    name: str
    eta: float = 0.1
    step: float = 4.0
    batches: tuple[int, int] = (500, 3000)
    switch_episode: int = 5000
    smoothness: float | None = None
    confidence: float = 2.0
    margin_fraction: float = 0.5


#: the experiment's settings (eta 0.1, step cap 4, batches 500 then 3,000)
LB_SGD_EXPERIMENT = LBSGDPreset("paper-experiment")


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


class LBSGD(SmoothedStartLearner):
    """Log-barrier stochastic gradient ascent on a softmax policy (module docstring)."""

    name = "lb-sgd"

    def __init__(self, training: TrainingResult, tasks: list[CMDP], horizon: int,
                 preset: LBSGDPreset = LB_SGD_EXPERIMENT, **overrides):
        preset = resolve_preset(preset, LBSGDPreset, overrides)
        eta, step, batches = preset.eta, preset.step, preset.batches
        switch_episode, smoothness = preset.switch_episode, preset.smoothness
        confidence, margin_fraction = preset.confidence, preset.margin_fraction
        for field_name, value in (("eta", eta), ("step", step)):
            positive(field_name, value)
        for field_name, value in (("batches[0]", batches[0]), ("batches[1]", batches[1]),
                                  ("switch_episode", switch_episode)):
            positive(field_name, value, integer=True)
        if not (isinstance(confidence, (int, float)) and confidence >= 0):
            raise BaselineInputError(f"confidence: expected a number >= 0; got {confidence!r}")
        super().__init__(training, tasks, horizon, preset, margin_fraction)
        gamma = self.scales.gamma
        self.smoothness = 8 / (1 - gamma)**3 if smoothness is None else float(smoothness)
        positive("smoothness", self.smoothness)
        self.eta, self.step, self.batches = float(eta), float(step), tuple(batches)
        self.switch_episode, self.confidence = int(switch_episode), float(confidence)

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
        s = self.scales
        cost = cost_returns / s.cost_max
        cost_hat = float(cost.mean())
        slack = s.scaled_budget - cost_hat - self.confidence * float(
            cost.std(ddof=1) / math.sqrt(cost.size))
        event = {"episode": self.episode, "iteration": self.iteration, "batch": int(cost.size),
                 "cost_estimate": cost_hat * s.cost_max, "slack_lower": slack * s.cost_max}
        if slack <= 0:
            event["step"] = 0.0
            self.events.append(event)
            return
        grad_r = reinforce_gradient(batch, self.logits, "reward")[0] / s.reward_max
        grad_k = reinforce_gradient(batch, self.logits, "cost")[0] / s.cost_max
        step, g = barrier_step(grad_r, grad_k, slack, self.eta, self.step, self.smoothness)
        norm = float(np.linalg.norm(g))
        if step == 0:
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
        return {"preset": self.preset, "eta": self.eta, "step": self.step,
                "batches": list(self.batches), "switch_episode": self.switch_episode,
                "smoothness": self.smoothness, "confidence": self.confidence,
                "start_eta": self.start_eta, "iterations": self.iteration,
                "events": self.events}
