"""Safe-PCE (Algorithm 2) and PCE (Algorithm 4), Section 4 of the paper, with two constant presets.

* ``theory``: the paper's constants in its normalised utility units (Section 2 of the paper): the
  elimination width of Ineq. 5 ``sqrt(2 ln(4K/delta) / (n (1-gamma)^2)) + eps (L + 1)``, stage
  lengths ``32 ln(4K/delta) / ((1-gamma)^2 v_{l,m}^2)``, the weights of Eq. 6 and
  ``m(l) = log_{C_l} eps`` (Eq. 7). Here eps is the cover radius in task distance and L the
  simulation-lemma constant. At experiment scale these constants are vacuous (docs/experiment.md):
  alpha_1 <= 0 or stages longer than K, so the run stays on pi_s.
* ``scaled``: the theory preset with every worst-case constant shrunk by a factor f in (0, 1]:
  the statistical width term is multiplied by f and eps by f wherever it enters (the widths'
  eps (L+1), kappa, alpha_1, m(l)); stage lengths, which make the statistical width v/4, shrink by
  f^2. f = 1 is ``theory``; decreasing f shows how far the constants can shrink before safety
  breaks.
* ``paper-experiment``: the authors' tuned constants in cost units (from their code; the paper
  gives none of them: App. H.1 describes only Algorithm 1's oracles) as their code runs
  them: while a later candidate is still at alpha = 0, its test uses the pooled returns of every
  pi_s-only episode so far (widths with the pooled count), but it fires only once the *current
  stage* holds ``min_test_episodes`` (1,000) episodes, so every candidate after the first gets a
  pi_s-only stage of at least 1,000 episodes.
* ``pooled-gate`` (key ``safe-pce-pooled-gate``): a variant of the authors' pooled test (which
  Algorithm 2 does not have), the same constants with the pooled test gated by the pooled count
  (it can fire on the first episode of a new candidate's stage). Kept to show what the gate
  changes: fewer pi_s-only episodes, a violation rate within the code's (docs/experiment.md,
  docs/erratum.md).

Both presets share one implementation of the candidate loop: optimistic candidate selection
(argmax u over the surviving tuples), the mixture ``alpha pi_l + (1 - alpha) pi_s`` with predicted
values of Eq. 3, the elimination test after every episode, and stage advances. Returns are the
truncated discounted sums of Eq. 4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from safepce.tabular import UtilityForm
from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError

from ..harness import Deployment, TestTimeAlgorithm
from ..training import TrainingResult


class PresetError(InputError):
    """An unknown constant preset or out-of-range constant."""


# --- the mixture weights, as pure functions ---------------------------------------------------


def mixture_weights(v_s: float, eps: float, L: float, gamma: float, n_stages: int) -> np.ndarray:
    """alpha_{l,0..n_stages} of Eq. 6 (closed form); alpha_{l,0} = 0. Utility units.

    ``alpha_1 = (v_s - 2 eps (L+2)) / (v_s - 2 eps (L+2) + 2/(1-gamma))`` and, for m >= 1,
    ``alpha_{m+1} = (v_s - kappa) alpha_1 / (v_s alpha_1 + (v_s - kappa - v_s alpha_1) C^m)`` with
    ``kappa = (4L+9) eps`` and ``C = (2 v_s + kappa) / (3 v_s)`` (the appendix's C_l). Values are
    returned unclipped; they lie in (0, 1) only when ``v_s > max(kappa, 2 eps (L+2))``.
    """
    kappa = (4 * L + 9) * eps
    alpha = np.zeros(n_stages + 1)
    if n_stages == 0:
        return alpha
    margin = v_s - 2 * eps * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - gamma))
    # alpha_{m+1} uses C^m (Eq. 6; Eq. 28 is off by one); m = 0 gives alpha_1 back
    ratio = (2 * v_s + kappa) / (3 * v_s) if v_s != 0 else math.inf
    m = np.arange(0, n_stages)
    if v_s > 0 and 0 < ratio < 1:
        # the premise's regime, v_s > kappa: with delta = v_s - kappa, C = 1 - delta/(3 v_s)
        # and Eq. 6 reads alpha_1 / (v_s alpha_1 (1 - C^m)/delta + C^m); so written it keeps
        # its digits as v_s approaches kappa (the literal form divides differences of nearly
        # equal numbers: off by 50% at v_s - kappa ~ 1e-14, found by bounds.falsify's eq-6)
        delta = v_s - kappa
        log_ratio = math.log1p(-delta / (3 * v_s))
        growth = -np.expm1(m * log_ratio) / delta
        alpha[1:] = alpha_1 / (v_s * alpha_1 * growth + np.exp(m * log_ratio))
    else:
        alpha[1:] = (v_s - kappa) * alpha_1 / (v_s * alpha_1
                                               + (v_s - kappa - v_s * alpha_1) * ratio**m)
    return alpha


def mixture_weights_recursive(v_s: float, eps: float, L: float, gamma: float,
                              n_stages: int) -> np.ndarray:
    """The same weights by App. D's recursion ``alpha_{m+1} = alpha_m 3 v_s / ((2+alpha_m) v_s
    + kappa)`` from the same alpha_1 (used to test Eq. 6)."""
    kappa = (4 * L + 9) * eps
    alpha = np.zeros(n_stages + 1)
    if n_stages == 0:
        return alpha
    margin = v_s - 2 * eps * (L + 2)
    alpha[1] = margin / (margin + 2 / (1 - gamma))
    for m in range(1, n_stages):
        alpha[m + 1] = alpha[m] * 3 * v_s / ((2 + alpha[m]) * v_s + kappa)
    return alpha


def stage_limit(v_s: float, eps: float, L: float) -> float:
    """m(l) = log_{C_l} eps (Eq. 7); -1 (no update allowed) when C_l >= 1, i.e. v_s <= kappa."""
    kappa = (4 * L + 9) * eps
    ratio = (2 * v_s + kappa) / (3 * v_s) if v_s > 0 else math.inf
    if not 0 < ratio < 1:
        return -1.0
    return math.log(eps) / math.log(ratio)


def theory_stage_length(v_pred: float, gamma: float, delta: float, n_episodes: int,
                        scale: float = 1.0) -> float:
    """The stage length of Algorithm 2, line 11 (App. D): ``32 ln(4K/delta) / ((1-gamma)^2
    v_{l,m}^2)`` times ``scale^2`` (the scaled preset); at that n the statistical width
    ``sqrt(2 ln(4K/delta) / (n (1-gamma)^2))`` of Ineq. 5 is ``scale v_{l,m} / 4``. inf when
    ``v_pred <= 0`` (no update)."""
    if v_pred <= 0:
        return math.inf
    return scale**2 * 32 * math.log(4 * n_episodes / delta) / ((1 - gamma)**2 * v_pred**2)


def experiment_mixture_weights(slack: float, eps: float, L_c: float, n_stages: int) -> np.ndarray:
    """The authors' weights in cost units (their code; not in the paper), with
    ``slack = D_s = b - v_{l,s}``: ``alpha_1 = (D_s - 2 eps L_c) / (D_s - 2 eps L_c + 2)``,
    ``alpha_m = 3 D_s alpha_{m-1} / ((alpha_{m-1} + 2) D_s + (2 L_c + 1) eps)``, each clipped
    to [0, 1]; alpha_0 = 0."""
    alpha = np.zeros(n_stages + 1)
    if n_stages == 0:
        return alpha
    alpha[1] = np.clip((slack - 2 * eps * L_c) / (slack - 2 * eps * L_c + 2), 0.0, 1.0)
    for m in range(2, n_stages + 1):
        alpha[m] = np.clip(3 * slack * alpha[m - 1] / ((alpha[m - 1] + 2) * slack
                                                       + (2 * L_c + 1) * eps), 0.0, 1.0)
    return alpha


def _certified_size(n0: float, T_R: float, T_C: float, bounds, a: float, e: float,
                    limit: int) -> int:
    """The largest b <= limit with no failed elimination test possible within b episodes of
    signals in [low, high] (see :meth:`SafePCE.certified_block`): floats only."""
    R_low, R_high, u_pred, C_low, C_high, v_pred = bounds
    best = float(limit)
    for hi, q, t in ((R_high, u_pred, T_R), (-R_low, -u_pred, -T_R),
                     (C_high, v_pred, T_C), (-C_low, -v_pred, -T_C)):
        g = hi - q - e
        if g <= 0:
            continue
        D = max(n0 * hi - t, 0.0)
        denominator = a + math.sqrt(a * a + 4 * D * g)
        if denominator <= 0:              # no statistical width and no episodes yet
            return 0
        x = 2 * g / denominator
        # a relative 1e-9 below the real root: a float mean at the root is not trusted
        best = min(best, math.floor((1 - 1e-9) / (x * x)) - n0)
    return int(max(0.0, min(best, limit)))


# --- constant presets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Constants:
    """The numbers of a preset resolved for one run. ``units`` is "paper" (normalised utility)
    or "cost"."""

    preset: str
    units: str
    eps: float
    L_reward: float
    L_cost: float
    reward_scale: float
    cost_scale: float
    pooled_reward_scale: float | None
    pooled_cost_scale: float | None
    min_test_episodes: int
    gamma: float
    delta: float
    scale: float = 1.0
    pooled_gate: str = "stage"

    @property
    def theory_like(self) -> bool:
        """True for the paper-unit presets (Ineq. 5 / Eq. 6 / Eq. 7 with the paper's constants)."""
        return self.units == "paper"

    def widths(self, n: np.ndarray, n_episodes: int, pooled: bool = False):
        """(reward width, constraint width) of the elimination test after n episodes."""
        n = np.asarray(n, dtype=np.float64)
        if self.theory_like:
            width = (self.scale * np.sqrt(2 * math.log(4 * n_episodes / self.delta)
                                          / (n * (1 - self.gamma)**2))
                     + self.eps * (self.L_reward + 1))
            return width, width
        reward_scale = self.pooled_reward_scale if pooled else self.reward_scale
        cost_scale = self.pooled_cost_scale if pooled else self.cost_scale
        return (np.sqrt(reward_scale / n) + self.eps * self.L_reward,
                np.sqrt(cost_scale / n) + self.eps * self.L_cost)


@dataclass(frozen=True)
class SafePCEPreset:
    """Every number of a Safe-PCE / PCE constant preset.

    ``units="paper"``: the paper's constants in normalised utility units; eps is the cover radius
    in task distance and L Lemma C.3's constant, both taken from the run (so ``eps`` and the L's
    stay None here), and ``scale`` f in (0, 1] shrinks every worst-case term (f = 1: the paper's).
    ``units="cost"``: the authors' tuned constants in cost units, all fixed here.
    """

    name: str
    units: str
    scale: float = 1.0
    eps: float | None = None
    L_reward: float | None = None
    L_cost: float | None = None
    reward_scale: float = math.nan
    cost_scale: float = math.nan
    pooled_reward_scale: float | None = None
    pooled_cost_scale: float | None = None
    min_test_episodes: int = 1
    #: which count must reach ``min_test_episodes`` before the pooled pi_s test may fire:
    #: "stage" (the current stage's episodes, the authors' code) or "pooled" (the pooled count)
    pooled_gate: str = "stage"

    def __post_init__(self):
        if self.units not in ("paper", "cost"):
            raise PresetError(f"units: expected 'paper' or 'cost'; got {self.units!r}")
        if self.pooled_gate not in ("stage", "pooled"):
            raise PresetError(f"pooled_gate: expected 'stage' or 'pooled'; got "
                              f"{self.pooled_gate!r}")
        if not 0 < self.scale <= 1:
            raise PresetError(f"scale: expected a factor in (0, 1]; got {self.scale!r}")

    @property
    def needs_cover_radius(self) -> bool:
        """True when eps (and delta) come from the training phase (the paper-unit presets)."""
        return self.units == "paper"

    def constants(self, gamma: float, eps: float | None = None,
                  delta: float | None = None) -> Constants:
        """The preset resolved for one family (its gamma) and, for paper units, the cover radius
        eps in task distance and delta of Algorithm 1."""
        if self.units == "cost":
            return Constants(preset=self.name, units="cost", eps=self.eps, L_reward=self.L_reward,
                             L_cost=self.L_cost, reward_scale=self.reward_scale,
                             cost_scale=self.cost_scale,
                             pooled_reward_scale=self.pooled_reward_scale,
                             pooled_cost_scale=self.pooled_cost_scale,
                             min_test_episodes=self.min_test_episodes, gamma=gamma,
                             delta=math.nan, pooled_gate=self.pooled_gate)
        if eps is None or delta is None:
            raise PresetError(f"eps, delta: the {self.name} preset needs the cover radius in task "
                              "distance and delta")
        if not (eps > 0 and 0 < delta < 1):
            raise PresetError(f"eps, delta: expected eps > 0 and delta in (0, 1); got {eps}, "
                              f"{delta}")
        L = simulation_lemma_constant(gamma)
        return Constants(preset=self.name, units="paper", eps=eps * self.scale, L_reward=L,
                         L_cost=L, reward_scale=math.nan, cost_scale=math.nan,
                         pooled_reward_scale=None, pooled_cost_scale=None,
                         min_test_episodes=self.min_test_episodes, gamma=gamma, delta=delta,
                         scale=self.scale)


#: the paper's constants: Ineq. 5's width, Eq. 6's weights, Eq. 7's m(l), stage lengths
THEORY = SafePCEPreset("theory", units="paper")
#: the theory constants shrunk by f = 0.01 (``dataclasses.replace(SCALED, scale=f)`` for others)
SCALED = SafePCEPreset("scaled", units="paper", scale=0.01)
#: the authors' Safe-PCE constants (Section 6 of the paper): eps 0.01, L_r 8, L_c 1; widths
#: sqrt(4000/n) + 0.08 and sqrt(300/n) + 0.01; pooled pi_s widths sqrt(4000/n) + 0.08 and
#: sqrt(150/n) + 0.01; no test before the current stage holds 1,000 episodes (their code)
SAFE_PCE_EXPERIMENT = SafePCEPreset(
    "paper-experiment", units="cost", eps=0.01, L_reward=8.0, L_cost=1.0, reward_scale=4000.0,
    cost_scale=300.0, pooled_reward_scale=4000.0, pooled_cost_scale=150.0,
    min_test_episodes=1000)
#: the same constants with the pooled test gated by the pooled count (a variant of the code's gate)
SAFE_PCE_POOLED_GATE = SafePCEPreset(
    "pooled-gate", units="cost", eps=0.01, L_reward=8.0, L_cost=1.0, reward_scale=4000.0,
    cost_scale=300.0, pooled_reward_scale=4000.0, pooled_cost_scale=150.0,
    min_test_episodes=1000, pooled_gate="pooled")
#: the authors' PCE constants: eps 0.1, widths sqrt(3000/n) + 0.8 and sqrt(600/n) + 0.1, no test
#: before n = 100
PCE_EXPERIMENT = SafePCEPreset(
    "paper-experiment", units="cost", eps=0.1, L_reward=8.0, L_cost=1.0, reward_scale=3000.0,
    cost_scale=600.0, min_test_episodes=100)


def theory_constants(eps: float, gamma: float, delta: float, scale: float = 1.0) -> Constants:
    """Ineq. 5's width with eps = cover radius in task distance, L = Lemma C.3's constant;
    ``scale`` < 1 gives the ``scaled`` preset (eps stored already multiplied by the scale)."""
    preset = THEORY if scale == 1 else SafePCEPreset("scaled", units="paper", scale=scale)
    return preset.constants(gamma, eps, delta)


# --- the candidate-elimination loop ---------------------------------------------------------------


class SafePCE(TestTimeAlgorithm):
    """Safe-PCE (Algorithm 2). Needs the training result (U_hat, pi_s), the family's units (a
    :class:`safepce.tabular.UtilityForm` of any task of the family: scales, budget, gamma), the
    episode
    length H and a preset; ``theory`` also needs eps (cover radius in task distance) and delta.
    """

    name = "safe-pce"
    mixing = True
    default_preset = SAFE_PCE_EXPERIMENT

    def __init__(self, training: TrainingResult, units: UtilityForm, horizon: int,
                 preset: SafePCEPreset | None = None, eps: float | None = None,
                 delta: float | None = None):
        preset = self.default_preset if preset is None else preset
        if not isinstance(preset, SafePCEPreset):
            raise PresetError(f"preset: expected a SafePCEPreset (e.g. THEORY, SCALED, "
                              f"SAFE_PCE_EXPERIMENT); got {preset!r}")
        self.preset_object = preset
        self.preset = preset.name
        self.training = training
        self.units = units
        self.horizon = int(horizon)
        self.budget = float(units.budgets[0])
        self.constants = preset.constants(units.gamma, eps, delta)
        # U_hat in the preset's units: (u, v, u_s, v_s) per candidate
        if self.constants.units == "paper":
            self.u = units.reward_value_to_paper(training.reward_values)
            self.v = units.cost_value_to_paper(training.cost_values)
            self.u_s = units.reward_value_to_paper(training.safe_reward_values)
            self.v_s = units.cost_value_to_paper(training.safe_cost_values)
        else:
            self.u, self.v = training.reward_values, training.cost_values
            self.u_s, self.v_s = training.safe_reward_values, training.safe_cost_values

    @classmethod
    def from_training(cls, training: TrainingResult, family, horizon: int,
                      preset: SafePCEPreset, delta: float | None = None) -> SafePCE:
        """The algorithm on a family's training result: units from any task of the family;
        paper-unit presets take eps = the cover radius in task distance and Algorithm 1's delta."""
        units = family.build(training.cover_parameters[0]).utility_form
        if not preset.needs_cover_radius:
            return cls(training, units, horizon, preset=preset)
        return cls(training, units, horizon, preset=preset, eps=training.cover_radius(family),
                   delta=training.settings["delta"] if delta is None else delta)

    # --- preset-specific schedule ---------------------------------------------------------

    def _alpha(self, m: int) -> float:
        """alpha_{l,m} for the current candidate (memoised per candidate and stage)."""
        if m == 0:
            return 0.0
        key = (self.current, m)
        cache = self.__dict__.setdefault("_alpha_cache", {})
        if key not in cache:
            cache[key] = self._alpha_uncached(m)
        return cache[key]

    def _alpha_uncached(self, m: int) -> float:
        c = self.constants
        if c.theory_like:
            raw = mixture_weights(self.v_s[self.current], c.eps, c.L_reward, c.gamma, m)[m]
            return float(np.clip(raw, 0.0, 1.0))
        slack = self.budget - self.v_s[self.current]
        return float(experiment_mixture_weights(slack, c.eps, c.L_cost, m)[m])

    def _stage_limit(self) -> float:
        c = self.constants
        if c.theory_like:
            return stage_limit(self.v_s[self.current], c.eps, c.L_reward)
        return math.log(c.eps) / math.log(2 / 3)

    def _stage_length(self, v_pred: float) -> float:
        """Episodes a stage must last before its weight may grow (k - k0 - 1 >= this)."""
        c = self.constants
        if c.theory_like:
            return theory_stage_length(v_pred, c.gamma, c.delta, self.n_episodes, c.scale)
        slack = self.budget - v_pred
        raw = 100 / slack**2 if slack != 0 else math.inf
        return min(max(raw, 1000.0), 5200.0)

    def _signals(self, reward_returns, cost_returns):
        """Returns in the preset's units: normalised reward and utility (b(1-gamma^H) - C)/scale
        for ``theory`` (Eq. 4 with c = b(1-gamma) - cost), task units otherwise."""
        if self.constants.units == "cost":
            return reward_returns, cost_returns
        truncated_budget = self.budget * (1 - self.units.gamma**self.horizon)
        return (reward_returns / self.units.reward_scale,
                (truncated_budget - cost_returns) / self.units.utility_scale[0])

    # --- TestTimeAlgorithm ------------------------------------------------------------------

    def reset(self, n_episodes: int, seed=None) -> None:
        self.n_episodes = int(n_episodes)
        self.alive = np.ones(self.u.size, dtype=bool)
        self.tried = 0
        self.episode = 0
        self.events: list[dict] = []
        self.order: list[int] = []
        self.pool = np.zeros(3)       # sum R, sum C, n over safe-only episodes
        self._select()

    def _select(self) -> None:
        """Optimism: the surviving tuple with the largest predicted reward u."""
        self.m, self.alpha, self.stage = 0, 0.0, np.zeros(3)
        if not self.alive.any():
            self.current = None
            self.events.append({"episode": self.episode, "event": "exhausted"})
            return
        self.current = int(np.flatnonzero(self.alive)[np.argmax(self.u[self.alive])])
        self.tried += 1
        self.order.append(self.current)
        self.events.append({"episode": self.episode + 1, "event": "select",
                            "candidate": self.current,
                            "parameter": self.training.cover_parameters[self.current].tolist()})

    def _predicted(self) -> tuple[float, float]:
        """(u_{l,m}, v_{l,m}) of Eq. 3."""
        if not self.mixing:
            return float(self.u[self.current]), float(self.v[self.current])
        a, i = self.alpha, self.current
        return a * self.u[i] + (1 - a) * self.u_s[i], a * self.v[i] + (1 - a) * self.v_s[i]

    def _can_advance(self) -> bool:
        return (self.mixing and self.current is not None and self.m <= self._stage_limit()
                and self._alpha(self.m + 1) > 0)

    def deployment(self) -> Deployment:
        remaining = self.n_episodes - self.episode
        safe = self.training.safe_policy
        if self.current is None:
            return Deployment((safe,), np.ones(1), ("safe",), remaining)
        episodes = remaining
        if self._can_advance():
            needed = self._stage_length(self._predicted()[1]) + 2     # n - 2 >= length
            if math.isfinite(needed):
                episodes = max(1, math.ceil(needed) - int(self.stage[2]))
        candidate = self.training.policies[self.current]
        key = ("candidate", self.current)
        if not self.mixing:
            return Deployment((candidate,), np.ones(1), (key,), episodes)
        if self.alpha == 0.0:
            return Deployment((safe,), np.ones(1), ("safe",), episodes)
        return Deployment((candidate, safe), np.array([self.alpha, 1 - self.alpha]),
                          (key, "safe"), episodes)

    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray) -> int:
        R, C = self._signals(np.asarray(reward_returns), np.asarray(cost_returns))
        size = R.size
        if self.current is None:
            self.episode += size
            return size
        c = self.constants
        u_pred, v_pred = self._predicted()
        safe_only = self.mixing and self.alpha == 0.0
        pooled = (safe_only and self.tried > 1 and c.pooled_reward_scale is not None)
        base = self.pool if pooled else self.stage
        n = base[2] + np.arange(1, size + 1)
        mean_R = (base[0] + np.cumsum(R)) / n
        mean_C = (base[1] + np.cumsum(C)) / n
        width_R, width_C = c.widths(n, self.n_episodes, pooled=pooled)
        gate = self.stage[2] + np.arange(1, size + 1) if (
            pooled and c.pooled_gate == "stage") else n
        testable = gate >= c.min_test_episodes
        fail_R = testable & (np.abs(mean_R - u_pred) > width_R)
        fail_C = testable & (np.abs(mean_C - v_pred) > width_C)
        failed = np.flatnonzero(fail_R | fail_C)
        first_fail = int(failed[0]) if failed.size else size
        first_advance = size
        if self._can_advance():
            needed = self._stage_length(v_pred) + 2
            stage_n = self.stage[2] + np.arange(1, size + 1)
            ready = np.flatnonzero(stage_n >= needed)
            first_advance = int(ready[0]) if ready.size else size
        last = min(first_fail, first_advance)
        used = min(last + 1, size)
        self.stage += (R[:used].sum(), C[:used].sum(), used)
        if safe_only:
            self.pool += (R[:used].sum(), C[:used].sum(), used)
        self.episode += used
        if first_fail < size and first_fail <= first_advance:
            tests = [name for name, f in (("reward", fail_R[first_fail]),
                                          ("constraint", fail_C[first_fail])) if f]
            self.events.append({
                "episode": self.episode, "event": "eliminate", "candidate": self.current,
                "m": self.m, "alpha": self.alpha, "test": "+".join(tests), "n": int(n[first_fail]),
                "pooled": bool(pooled),
                "reward_gap": float(abs(mean_R[first_fail] - u_pred)),
                "constraint_gap": float(abs(mean_C[first_fail] - v_pred))})
            self.alive[self.current] = False
            self._select()
        elif first_advance < size:
            self._advance()
        return used

    def _advance(self) -> None:
        self.m += 1
        self.alpha = self._alpha(self.m)
        self.stage = np.zeros(3)
        self.events.append({"episode": self.episode, "event": "stage",
                            "candidate": self.current, "m": self.m, "alpha": self.alpha})

    # --- exact blocks (safepce.theory.exact_blocks) -------------------------------------------

    def certified_block(self, reward_range, cost_range, limit: int) -> int:
        """The largest b <= ``limit`` such that *every* sequence of b episodes whose returns lie
        in ``reward_range`` and ``cost_range`` (task units, (low, high)) passes the elimination
        test (line 7 of Algorithm 2, Ineq. 5's width) after each of its b episodes; 0 if even one
        episode could fail it. Then only the block's sums matter to the algorithm
        (:meth:`observe_totals`).

        Why checking the b-th episode suffices: after j episodes of the block the stage mean is
        at most (T + j hi)/(n0 + j), non-decreasing in j (T <= n0 hi), while the width
        a/sqrt(n0 + j) + e decreases; so "mean - prediction > width" can first become possible
        only at j = b (and symmetrically below). Solving (T + b hi)/(n0 + b) - p <= a/sqrt(N) + e
        for N = n0 + b: with x = 1/sqrt(N), D = n0 hi - T >= 0, g = hi - p - e, it holds iff
        D x^2 + a x >= g, i.e. x >= 2g/(a + sqrt(a^2 + 4 D g)). Paper-unit presets only."""
        if self.current is None:
            return int(limit)
        bounds, a, e = self._certification(reward_range, cost_range)
        return _certified_size(float(self.stage[2]), float(self.stage[0]), float(self.stage[1]),
                               bounds, a, e, int(limit))

    def _certification(self, reward_range, cost_range):
        """((R low, R high, u_pred, C low, C high, v_pred) in paper units, a, e) of the current
        stage: the signals' range, the predictions and the width a/sqrt(n) + e."""
        c = self.constants
        if not c.theory_like or c.pooled_reward_scale is not None:
            raise PresetError(f"preset: exact blocks need a paper-unit preset without pooled "
                              f"tests; got {self.preset!r}")
        low_high = np.array([reward_range, cost_range], dtype=np.float64)
        R, C = self._signals(low_high[0], low_high[1])      # utility reverses the cost's order
        u_pred, v_pred = self._predicted()
        a = c.scale * math.sqrt(2 * math.log(4 * self.n_episodes / c.delta)
                                / (1 - c.gamma)**2)
        e = c.eps * (c.L_reward + 1)
        return ((float(R.min()), float(R.max()), float(u_pred), float(C.min()), float(C.max()),
                 float(v_pred)), a, e)

    def consume_certified(self, reward_returns, cost_returns, probability, limit: int, rng,
                          min_block: int) -> list:
        """Draw and consume certified blocks of the current deployment, one after another,
        while each is at least ``min_block`` episodes (or the rest of ``limit``): the same
        sizes :meth:`certified_block` gives and the same multinomial draws (``rng``) the
        one-block-at-a-time loop makes, without leaving the stage's bookkeeping between blocks.
        Outcomes' returns in task units; returns the blocks as (size, counts)."""
        if self.current is None:
            return []
        reward_returns = np.asarray(reward_returns, dtype=np.float64)
        cost_returns = np.asarray(cost_returns, dtype=np.float64)
        bounds, a, e = self._certification((reward_returns.min(), reward_returns.max()),
                                           (cost_returns.min(), cost_returns.max()))
        R, C = self._signals(reward_returns, cost_returns)
        n0, T_R, T_C = float(self.stage[2]), float(self.stage[0]), float(self.stage[1])
        blocks = []
        remaining = int(limit)
        while remaining > 0:
            size = _certified_size(n0, T_R, T_C, bounds, a, e, remaining)
            if size < min(min_block, remaining):
                break
            counts = rng.multinomial(size, probability)
            T_R += float(counts @ R)
            T_C += float(counts @ C)
            n0 += size
            remaining -= size
            blocks.append((size, counts))
        if blocks:
            total = sum(size for size, _ in blocks)
            counts = sum(c for _, c in blocks)
            self.observe_totals(float(counts @ reward_returns), float(counts @ cost_returns),
                                total)
            # the stage's sums as accumulated block by block (the same numbers up to round-off)
            if self.stage[2] == n0:
                self.stage[:2] = (T_R, T_C)
        return blocks

    def observe_totals(self, reward_total: float, cost_total: float, size: int) -> int:
        """Consume a block of ``size`` episodes from their summed returns (task units). Exact
        only for a block that :meth:`certified_block` allowed (no test can fail inside it) and
        that stays within :meth:`deployment`'s episodes; then the state afterwards equals what
        :meth:`observe` leaves for any order of the same episodes."""
        size = int(size)
        if self.current is None:
            self.episode += size
            return size
        truncated_budget = self.budget * (1 - self.units.gamma**self.horizon)
        R = reward_total / self.units.reward_scale
        C = (size * truncated_budget - cost_total) / self.units.utility_scale[0]
        advance = False
        if self._can_advance():
            needed = self._stage_length(self._predicted()[1]) + 2
            if math.isfinite(needed) and self.stage[2] + size > max(math.ceil(needed),
                                                                     self.stage[2] + 1):
                raise PresetError(f"size: a block of {size} runs past the stage's end")
            advance = self.stage[2] + size >= needed
        self.stage += (R, C, size)
        if self.mixing and self.alpha == 0.0:
            self.pool += (R, C, size)
        self.episode += size
        if advance:
            self._advance()
        return size

    def log(self) -> dict:
        return {"preset": self.preset, "constants": asdict(self.constants),
                "candidate_order": self.order, "events": self.events,
                "final_alpha": self.alpha if self.mixing else 1.0,
                "final_candidate": self.current}


class PCE(SafePCE):
    """PCE (Algorithm 4, App. F): deploy the optimistic candidate itself (alpha = 1), same
    elimination test on (u_l, v_l), no stages. Unsafe: its deployed policies may violate."""

    name = "pce"
    mixing = False

    default_preset = PCE_EXPERIMENT
