"""App. D, E and F of the paper (the proofs of Lemma 4.5, Theorem 4.2 and Corollary F.1) as ratio
claims for :mod:`safepce.bounds.falsify`, evaluated on the schedule the toolkit's Safe-PCE
[theory] (and PCE) runs.

Three claims over one :class:`ScheduleInstance` (gamma, the cover radius eps, Slater's xi, the
candidate's predicted values u_l, v_l, pi_s's predicted values u_s, v_s, a stage m, K, delta;
the paper's units):

* ``eq-30`` (paper statement): Eq. 30, alpha_{l,m} >= 1 - A_l eps once m >= log_{C_l} eps, for
  the weights the algorithm deploys (Eq. 6, App. D's recursion). Ratio ``(1 - alpha_{l,m}) /
  (A_l eps)`` at m = ceil(log_{C_l} eps). Exact route: App. D's recursion in rational arithmetic,
  m the least integer with C_l^m <= eps found by exact powers.
* ``lemma-4.5`` (paper statement): Lemma 4.5.1 by App. D's induction: if the test that let the
  weight grow passed and the confidence event (Ineq. 23) holds, Ineq. 25 pins the true utility of
  the stage-0 and stage-m mixtures; with |V_c| <= 1/(1-gamma) the next mixture pi_{l,m+1} is
  feasible. Ratio ``1 - (1-gamma) min V_c(pi_{l,m+1})``, the minimum over every (V_c(pi_l),
  V_c(pi_s)) those intervals allow (> 1 iff an infeasible policy is deployed). Fast route: the
  toolkit's weights, stage length and widths, the LP by HiGHS (scipy.optimize.linprog); exact
  route: Ineq. 25 restated ([v/2 - eps(L+2), 3v/2 + eps(L+2)]), the weights by App. D's
  recursion, the LP by enumerating the vertices of the polygon in rational arithmetic.
* ``theorem-4.2`` (paper statement): App. E's explicit bound (:func:`~safepce.bounds.upper.
  theorem_4_2_terms`) against the largest regret the events App. E conditions on allow, for one
  candidate that survives (E = 1) on the toolkit's stage schedule: in each stage of n episodes
  V* <= min(1/(1-gamma), u_l + 4 eps L (1 + 1/(xi (1-gamma)))) (Lemma 4.5.2) and V_r(pi_{l,m})
  >= max(0, alpha u_l + (1 - alpha) u_s - w(n) - eps - s(n)) (the elimination test of Ineq. 5
  with width w(n) = s(n) + eps (L+1) passed, and Ineq. 22 with s(n) = sqrt(2 ln(4K/delta) /
  (n (1-gamma)^2))). Ratio = that regret / the bound. Exact route: the schedule and the four
  terms restated from App. E in 50-digit decimal arithmetic.
* ``corollary-f.1`` (paper statement): the explicit reward-regret bound (1) in the proof of
  Corollary F.1 (App. F, p. 26) for PCE, over a :class:`PhaseInstance` (E - 1 candidates
  eliminated after n episodes each, the last surviving): an eliminated phase may have V_r down to
  u - w(n-1) - eps - s(n-1) (the test passed and Ineq. 22 held at n - 1; the last episode fails
  the test), which bound (1) charges as if the test had passed at n. Exact route: 50-digit
  decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError
from safepce.theory.algorithms.safe_pce import (
    THEORY,
    mixture_weights,
    stage_limit,
    theory_stage_length,
)

from .falsify import FalsifyError, RatioClaim, eq_6_lower_end, logit, sigmoid
from .upper import corollary_f_1_explicit, eq_30_constant, theorem_4_2_terms

#: the largest stage index searched (App. D's recursion in exact arithmetic grows per stage)
MAX_STAGE = 120


class _ScalarFields:
    """describe / save / load of an instance made of the scalar ``FIELDS`` (``INTEGERS`` among
    them read back as int); ``KIND`` names it in the error for a file that is not one."""

    FIELDS: tuple[str, ...] = ()
    INTEGERS: tuple[str, ...] = ()
    KIND = "counterexample"

    def describe(self) -> str:
        return ", ".join(f"{name} = {getattr(self, name):.10g}" for name in self.FIELDS)

    def save(self, path: Path) -> None:
        np.savez(path, **{name: np.float64(getattr(self, name)) for name in self.FIELDS})

    @classmethod
    def load(cls, path: Path):
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {name: float(data[name]) for name in cls.FIELDS}
        except (OSError, KeyError, ValueError) as exc:
            raise FalsifyError(f"{path}: not a {cls.KIND} ({exc})") from None
        values.update({name: int(values[name]) for name in cls.INTEGERS})
        return cls(**values)


@dataclass(frozen=True)
class ScheduleInstance(_ScalarFields):
    """One candidate's schedule inputs in the paper's units (Section 2)."""

    gamma: float
    eps: float
    xi: float
    v_s: float
    v_l: float
    u_l: float
    u_s: float
    m: int
    n_episodes: int
    delta: float

    FIELDS = ("gamma", "eps", "xi", "v_s", "v_l", "u_l", "u_s", "m", "n_episodes", "delta")
    INTEGERS = ("m", "n_episodes")
    KIND = "schedule counterexample"

    @property
    def L(self) -> float:
        return simulation_lemma_constant(self.gamma)

    @property
    def h(self) -> float:
        return 1 / (1 - self.gamma)

    def size(self) -> tuple[int, int]:
        return (self.m, 0)



class ScheduleSpace:
    """gamma in [0.001, 0.999], eps in [1e-9, 0.1], v_s in (Eq. 6's lower end, 1/(1-gamma)],
    xi in [(8L+18) eps, v_s], v_l in [-eps, 1/(1-gamma)] (Algorithm 1 keeps v >= -eps),
    u_l, u_s in [0, 1/(1-gamma)], a stage m, K in [10^2, 10^9], delta in {0.01, 0.05, 0.2}."""

    GAMMAS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99)
    EPSILONS = (1e-8, 1e-6, 1e-4, 1e-3, 1e-2)
    FRACTIONS = (0.0, 1e-9, 1e-6, 1e-3, 0.01, 0.1, 0.5, 0.9, 1.0)
    DELTAS = (0.01, 0.05, 0.2)
    EPISODES = (100, 10_000, 1_000_000, 100_000_000)

    @staticmethod
    def load(path: Path) -> ScheduleInstance:
        return ScheduleInstance.load(path)

    @staticmethod
    def build(gamma, eps, v_s_fraction, xi_fraction, v_l_fraction, u_l_fraction, u_s_fraction,
              m, n_episodes, delta) -> ScheduleInstance:
        """An instance from fractions of each range (m = -1: the last stage, floor(m(l)))."""
        gamma, eps = float(gamma), float(eps)
        L, h = simulation_lemma_constant(gamma), 1 / (1 - gamma)
        low = eq_6_lower_end(eps, L)
        v_s = low + float(v_s_fraction) * (h - low)
        xi_low = (8 * L + 18) * eps
        xi = xi_low + float(xi_fraction) * (v_s - xi_low)
        v_l = -eps + float(v_l_fraction) * (h + eps)
        if m < 0:
            limit = stage_limit(v_s, eps, L)
            m = int(min(MAX_STAGE, max(0, math.floor(limit)))) if limit >= 0 else 0
        return ScheduleInstance(gamma, eps, float(xi), float(v_s), float(v_l),
                                float(u_l_fraction) * h, float(u_s_fraction) * h, int(m),
                                int(n_episodes), float(delta))

    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[ScheduleInstance]:
        for _ in range(n):
            fractions = rng.choice(self.FRACTIONS, 5) * np.where(rng.random(5) < 0.5, 1,
                                                                 rng.uniform(0.5, 1, 5))
            m = int(rng.choice([0, 1, 2, 3, 5, 10, -1, -1]))
            yield self.build(rng.choice(self.GAMMAS), rng.choice(self.EPSILONS), *fractions, m,
                             int(rng.choice(self.EPISODES)), rng.choice(self.DELTAS))

    def strategy(self):
        from hypothesis import strategies as st

        unit = st.floats(0, 1)
        return st.builds(self.build, st.sampled_from(self.GAMMAS), st.sampled_from(self.EPSILONS),
                         unit, unit, unit, unit, unit, st.integers(-1, 12),
                         st.sampled_from(self.EPISODES), st.sampled_from(self.DELTAS))

    def encode(self, instance: ScheduleInstance) -> np.ndarray:
        L, h = instance.L, instance.h
        low = eq_6_lower_end(instance.eps, L)
        xi_low = (8 * L + 18) * instance.eps
        fractions = [(instance.v_s - low) / (h - low),
                     (instance.xi - xi_low) / (instance.v_s - xi_low)
                     if instance.v_s > xi_low else 0.0,
                     (instance.v_l + instance.eps) / (h + instance.eps),
                     instance.u_l / h, instance.u_s / h]
        return np.clip(np.concatenate([[logit(instance.gamma, 1e-12), math.log(instance.eps),
                                        math.log10(instance.n_episodes)],
                                       logit(np.array(fractions), 1e-12)]), -30, 30)

    def decode(self, x: np.ndarray, like: ScheduleInstance) -> ScheduleInstance:
        gamma = float(np.clip(sigmoid(x[0]), 1e-3, 0.999))
        eps = float(np.clip(np.exp(x[1]), 1e-9, 0.1))
        n_episodes = int(round(10 ** float(np.clip(x[2], 2, 9))))
        return self.build(gamma, eps, *sigmoid(x[3:8]), like.m, n_episodes, like.delta)


# --- Eq. 30 ------------------------------------------------------------------------------------


def _eq_30_stage(instance: ScheduleInstance) -> int:
    """ceil(log_{C_l} eps) (the toolkit's m(l) of Eq. 7), or -1 outside the range searched."""
    limit = stage_limit(instance.v_s, instance.eps, instance.L)
    if limit < 0 or limit > MAX_STAGE:
        return -1
    return max(1, math.ceil(limit))


#: Eq. 30's ratio jumps where log_{C_l} eps crosses an integer (its supremum 1/C_l is there);
#: within this relative distance of an integer the stage index is decided by rounding, so the
#: two routes could compare different stages: such instances are left out
INTEGER_MARGIN = 1e-7


def _eq_30_premise(instance: ScheduleInstance) -> bool:
    limit = stage_limit(instance.v_s, instance.eps, instance.L)
    return (eq_6_lower_end(instance.eps, instance.L) < instance.v_s <= instance.h
            and _eq_30_stage(instance) >= 1
            and abs(limit - round(limit)) > INTEGER_MARGIN * max(1.0, limit))


def _eq_30_ratio(instance: ScheduleInstance) -> float:
    m = _eq_30_stage(instance)
    alpha = mixture_weights(instance.v_s, instance.eps, instance.L, instance.gamma, m)
    A = eq_30_constant(instance.v_s, alpha[1], instance.eps, instance.gamma)
    return float((1 - alpha[m]) / (A * instance.eps))


def _exact_constants(instance: ScheduleInstance):
    F = Fraction
    gamma, eps, v = F(instance.gamma), F(instance.eps), F(instance.v_s)
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2          # Lemma C.3's L, exactly
    kappa = (4 * L + 9) * eps
    margin = v - 2 * eps * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - gamma))
    return gamma, eps, v, L, kappa, alpha_1


def _exact_weights(alpha_1: Fraction, v: Fraction, kappa: Fraction, n: int) -> list[Fraction]:
    """alpha_0 .. alpha_n by App. D's recursion alpha_{m+1} = 3 v alpha_m / ((2 + alpha_m) v
    + kappa)."""
    alpha = [Fraction(0), alpha_1]
    while len(alpha) <= n:
        a = alpha[-1]
        alpha.append(3 * v * a / ((2 + a) * v + kappa))
    return alpha[: n + 1]


def exact_eq_30(instance: ScheduleInstance, later: int = 0) -> tuple[Fraction, int]:
    """((1 - alpha_{m + later}) / (A_l eps), m) with m the least integer such that C_l^m <= eps,
    in rational arithmetic (App. D's recursion for the weights)."""
    gamma, eps, v, L, kappa, alpha_1 = _exact_constants(instance)
    C = (2 * v + kappa) / (3 * v)
    m, power = 0, Fraction(1)
    while power > eps:                               # the least m with C^m <= eps
        m, power = m + 1, power * C
    m = max(m, 1)
    alpha = _exact_weights(alpha_1, v, kappa, m + later)
    A = ((4 * L + 9 - v) * alpha_1 + v - kappa) / (v * alpha_1 + (v - kappa - v * alpha_1) * eps)
    return (1 - alpha[m + later]) / (A * eps), m


EQ_30 = RatioClaim(
    "eq-30", "Eq. 30 (App. E)",
    "alpha_{l,m} >= 1 - A_l eps once m >= log_{C_l} eps, for the weights Algorithm 2 deploys "
    "(Eq. 6 = App. D's recursion), checked at m = ceil(log_{C_l} eps)",
    "paper-statement", ScheduleSpace(), _eq_30_ratio, lambda instance: exact_eq_30(instance)[0],
    _eq_30_premise,
    agreement=1e-7)


# --- Lemma 4.5 (App. D's induction) --------------------------------------------------------------


def _toolkit_intervals(instance: ScheduleInstance):
    """(alpha_0..alpha_{m+1}, [(stage, low, high)] for stages 0 and m) from the toolkit's
    weights, stage length and widths: the stage ends after theory_stage_length episodes; the
    test passed (|mean - v_{l,j}| <= w) and Ineq. 23 holds (|mean - V_c| < eps + s)."""
    c = THEORY.constants(instance.gamma, instance.eps, instance.delta)
    alpha = np.clip(mixture_weights(instance.v_s, c.eps, c.L_reward, c.gamma, instance.m + 1),
                    0.0, 1.0)
    intervals = []
    for j in sorted({0, instance.m}):
        v = alpha[j] * instance.v_l + (1 - alpha[j]) * instance.v_s
        n = theory_stage_length(v, c.gamma, c.delta, instance.n_episodes)
        test = float(c.widths(n, instance.n_episodes)[1])
        statistical = test - c.eps * (c.L_cost + 1)
        spread = test + instance.eps + statistical
        intervals.append((j, v - spread, v + spread))
    return alpha, intervals


def _advances(instance: ScheduleInstance, alpha) -> bool:
    """The toolkit deploys pi_{l,m+1} only after stages 0..m, each with v_{l,j} > 0, and only
    while m <= m(l) (Eq. 7) and alpha_{m+1} > 0."""
    limit = stage_limit(instance.v_s, instance.eps, instance.L)
    return (0 <= instance.m <= min(limit, MAX_STAGE) and alpha[instance.m + 1] > 0
            and all(a * instance.v_l + (1 - a) * instance.v_s > 0
                    for a in alpha[: instance.m + 1]))


@lru_cache(maxsize=4096)
def _toolkit_lp(instance: ScheduleInstance) -> float | None:
    """min V_c(pi_{l,m+1}) over the (X, Y) = (V_c(pi_l), V_c(pi_s)) the intervals allow
    (HiGHS); None when no pair is consistent or the toolkit never deploys pi_{l,m+1}."""
    from scipy.optimize import linprog

    alpha, intervals = _toolkit_intervals(instance)
    if not _advances(instance, alpha):
        return None
    rows, bounds = [], []
    for j, low, high in intervals:
        row = [alpha[j], 1 - alpha[j]]
        rows += [[-row[0], -row[1]], row]
        bounds += [-low, high]
    h = instance.h
    a = alpha[instance.m + 1]
    result = linprog([a, 1 - a], A_ub=rows, b_ub=bounds, bounds=[(-h, h), (-h, h)],
                     method="highs")
    return float(result.fun) if result.status == 0 else None


def _lemma_4_5_premise(instance: ScheduleInstance) -> bool:
    return (eq_6_lower_end(instance.eps, instance.L) < instance.v_s <= instance.h
            and -instance.eps <= instance.v_l <= instance.h
            and _toolkit_lp(instance) is not None)


def _lemma_4_5_ratio(instance: ScheduleInstance) -> float:
    value = _toolkit_lp(instance)
    if value is None:
        raise InputError("no (V_c(pi_l), V_c(pi_s)) satisfies the premise")
    return 1 - (1 - instance.gamma) * value


def _exact_polygon_min(objective, constraints) -> Fraction:
    """min objective . (X, Y) subject to a X + b Y <= c for (a, b, c) in constraints, by
    enumerating the vertices (the polygon is bounded)."""
    best = None
    for i, (a1, b1, c1) in enumerate(constraints):
        for a2, b2, c2 in constraints[i + 1:]:
            det = a1 * b2 - a2 * b1
            if det == 0:
                continue
            x, y = (c1 * b2 - c2 * b1) / det, (a1 * c2 - a2 * c1) / det
            if all(a * x + b * y <= c for a, b, c in constraints):
                value = objective[0] * x + objective[1] * y
                best = value if best is None else min(best, value)
    if best is None:
        raise FalsifyError("the premise's polygon is empty")
    return best


def _exact_lemma_4_5(instance: ScheduleInstance) -> Fraction:
    gamma, eps, v_s, L, kappa, alpha_1 = _exact_constants(instance)
    alpha = _exact_weights(alpha_1, v_s, kappa, instance.m + 1)
    v_l, h = Fraction(instance.v_l), 1 / (1 - gamma)
    constraints = [(Fraction(1), Fraction(0), h), (Fraction(-1), Fraction(0), h),
                   (Fraction(0), Fraction(1), h), (Fraction(0), Fraction(-1), h)]
    for j in sorted({0, instance.m}):
        v = alpha[j] * v_l + (1 - alpha[j]) * v_s
        low, high = v / 2 - eps * (L + 2), 3 * v / 2 + eps * (L + 2)     # Ineq. 25
        constraints += [(-alpha[j], alpha[j] - 1, -low), (alpha[j], 1 - alpha[j], high)]
    a = alpha[instance.m + 1]
    return 1 - (1 - gamma) * _exact_polygon_min((a, 1 - a), constraints)


LEMMA_4_5 = RatioClaim(
    "lemma-4.5", "Lemma 4.5.1 (App. D's induction)",
    "when the stage-m test let the weight grow and Ineq. 23 holds, the true utility values "
    "allowed by Ineq. 25 at stages 0 and m and |V_c| <= 1/(1-gamma) make pi_{l,m+1} = "
    "alpha_{m+1} pi_l + (1 - alpha_{m+1}) pi_s feasible (V_c >= 0)",
    "paper-statement", ScheduleSpace(), _lemma_4_5_ratio, _exact_lemma_4_5, _lemma_4_5_premise,
    agreement=1e-7)


# --- Theorem 4.2 (App. E) against the worst regret its events allow ------------------------------


def _theorem_premise(instance: ScheduleInstance) -> bool:
    L = instance.L
    return ((8 * L + 18) * instance.eps <= instance.xi <= instance.v_s <= instance.h
            and -instance.eps <= instance.v_l <= instance.h and instance.n_episodes >= 1
            and 0 <= instance.u_s <= instance.h and 0 <= instance.u_l <= instance.h)


def toolkit_schedule(instance: ScheduleInstance) -> list[tuple[float, int]]:
    """(alpha, episodes) of each stage of one surviving candidate, as SafePCE advances: a stage
    ends after ceil(stage length + 2) episodes while m <= m(l) and alpha_{m+1} > 0; the last
    stage takes the episodes left."""
    c = THEORY.constants(instance.gamma, instance.eps, instance.delta)
    limit = stage_limit(instance.v_s, c.eps, c.L_reward)
    top = int(max(0, math.floor(limit)) + 2)
    alpha = np.clip(mixture_weights(instance.v_s, c.eps, c.L_reward, c.gamma, top), 0.0, 1.0)
    stages, used, m = [], 0, 0
    while used < instance.n_episodes:
        v_pred = alpha[m] * instance.v_l + (1 - alpha[m]) * instance.v_s
        length = math.inf
        if m <= limit and m + 1 <= top and alpha[m + 1] > 0:
            needed = theory_stage_length(v_pred, c.gamma, c.delta, instance.n_episodes) + 2
            length = math.ceil(needed) if math.isfinite(needed) else math.inf
        n = int(min(length, instance.n_episodes - used))
        stages.append((float(alpha[m]), n))
        used += n
        m += 1
    return stages


def _toolkit_worst_regret(instance: ScheduleInstance) -> float:
    c = THEORY.constants(instance.gamma, instance.eps, instance.delta)
    L, h, eps = c.L_reward, instance.h, instance.eps
    best = min(h, instance.u_l + 4 * eps * L * (1 + 1 / (instance.xi * (1 - instance.gamma))))
    total = 0.0
    for alpha, n in toolkit_schedule(instance):
        width = float(c.widths(n, instance.n_episodes)[0])
        statistical = width - eps * (L + 1)
        deployed = max(0.0, alpha * instance.u_l + (1 - alpha) * instance.u_s - width - eps
                       - statistical)
        total += n * (best - deployed)
    return total


def _theorem_ratio(instance: ScheduleInstance) -> float:
    alpha_1 = mixture_weights(instance.v_s, instance.eps, instance.L, instance.gamma, 1)[1]
    bound = theorem_4_2_terms(instance.n_episodes, instance.delta, instance.eps, instance.gamma,
                              instance.xi, 1, [instance.v_s], [alpha_1])
    return _toolkit_worst_regret(instance) / bound.total


def _exact_theorem_ratio(instance: ScheduleInstance) -> Fraction:
    """The schedule, the worst regret and App. E's four terms restated in 50-digit decimals."""
    with localcontext() as context:
        context.prec = 50
        D = Decimal
        gamma, eps, xi = D(instance.gamma), D(instance.eps), D(instance.xi)
        v_s, v_l = D(instance.v_s), D(instance.v_l)
        u_l, u_s, K, delta = D(instance.u_l), D(instance.u_s), D(instance.n_episodes), \
            D(instance.delta)
        one = D(1)
        h = one / (one - gamma)
        L = h + 2 * gamma / (one - gamma) ** 2
        kappa = (4 * L + 9) * eps
        margin = v_s - 2 * eps * (L + 2)
        alpha = [D(0), margin / (margin + 2 * h)]
        C = (2 * v_s + kappa) / (3 * v_s)
        log_term = (4 * K / delta).ln()
        best = min(h, u_l + 4 * eps * L * (one + one / (xi * (one - gamma))))
        total, used, m, power = D(0), D(0), 0, one            # power = C^m
        while used < K:
            while len(alpha) <= m + 1:
                a = alpha[-1]
                alpha.append(3 * v_s * a / ((2 + a) * v_s + kappa))
            a = min(max(alpha[m], D(0)), one)
            v_pred = a * v_l + (one - a) * v_s
            # m <= log_C eps  <=>  C^m >= eps (C < 1): Eq. 7's bound on the stage index
            if power >= eps and alpha[m + 1] > 0 and v_pred > 0:
                length = (32 * log_term / ((one - gamma) ** 2 * v_pred ** 2)).to_integral_value(
                    rounding=ROUND_CEILING) + 2
                n = min(length, K - used)
            else:
                n = K - used
            statistical = (2 * log_term / (n * (one - gamma) ** 2)).sqrt()
            width = statistical + eps * (L + 1)
            deployed = max(D(0), a * u_l + (one - a) * u_s - width - eps - statistical)
            total += n * (best - deployed)
            used += n
            m += 1
            power *= C
        stages = eps.ln() / C.ln()                                  # log_{C_l} eps
        a1 = alpha[1]
        A = ((4 * L + 9 - v_s) * a1 + v_s - kappa) / (v_s * a1 + (v_s - kappa - v_s * a1) * eps)
        term_i = 4 * eps * L * K * (one + one / (xi * (one - gamma)))
        term_ii = (2 * K * A * eps / (one - gamma)
                   + 32 * (K * log_term * stages).sqrt() / ((one - gamma) ** 2 * v_s))
        root = (2 * K * log_term * stages.to_integral_value(rounding=ROUND_CEILING)
                / (one - gamma) ** 2).sqrt()
        bound = term_i + term_ii + (eps * (L + 1) * K + root) + (eps * K + root)
        return Fraction(total / bound)


THEOREM_4_2 = RatioClaim(
    "theorem-4.2", "Theorem 4.2 (App. E's explicit bound)",
    "the regret of one surviving candidate (E = 1) is at most the four terms of App. E, for the "
    "largest regret the events App. E conditions on allow in every stage (Lemma 4.5.2's V*, the "
    "passed elimination test, Ineq. 22) on Safe-PCE [theory]'s stage schedule",
    "paper-statement", ScheduleSpace(), _theorem_ratio, _exact_theorem_ratio, _theorem_premise,
    agreement=1e-7)

# --- Corollary F.1 (PCE, App. F): the explicit reward-regret bound with eliminations -------------


@dataclass(frozen=True)
class PhaseInstance(_ScalarFields):
    """PCE (Algorithm 4) on one test task, paper units: E candidates with the same predicted
    reward ``u``, each deployed for ``n_phase`` episodes; the first E - 1 are eliminated on
    their last episode, the last survives (K = E n_phase)."""

    gamma: float
    eps: float
    xi: float
    u: float
    n_phase: int
    n_phases: int
    delta: float

    FIELDS = ("gamma", "eps", "xi", "u", "n_phase", "n_phases", "delta")
    INTEGERS = ("n_phase", "n_phases")
    KIND = "PCE-phase counterexample"

    @property
    def n_episodes(self) -> int:
        return self.n_phase * self.n_phases

    def size(self) -> tuple[int, int]:
        return (self.n_phases, self.n_phase)



class PhaseSpace:
    """gamma in [0.001, 0.999], eps in [1e-9, 0.1], xi in [(8L+18) eps, 1/(1-gamma)], u in
    [0, 1/(1-gamma)], phases of 2 to 10^6 episodes, 1 to 1000 of them, delta in {0.01, 0.05,
    0.2}."""

    GAMMAS = (0.001, 0.1, 0.5, 0.9, 0.99)
    EPSILONS = (1e-9, 1e-6, 1e-3)
    FRACTIONS = (0.0, 0.5, 0.9, 0.99, 1.0)
    LENGTHS = (2, 20, 50, 100, 1000, 10**5)
    COUNTS = (1, 2, 10, 100, 1000)
    DELTAS = (0.01, 0.05, 0.2)

    @staticmethod
    def load(path: Path) -> PhaseInstance:
        return PhaseInstance.load(path)

    @staticmethod
    def build(gamma, eps, xi_fraction, u_fraction, n_phase, n_phases, delta) -> PhaseInstance:
        gamma, eps = float(gamma), float(eps)
        L, h = simulation_lemma_constant(gamma), 1 / (1 - gamma)
        xi_low = (8 * L + 18) * eps
        return PhaseInstance(gamma, eps, float(xi_low + float(xi_fraction) * (h - xi_low)),
                             float(u_fraction) * h, int(n_phase), int(n_phases), float(delta))

    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[PhaseInstance]:
        for _ in range(n):
            yield self.build(rng.choice(self.GAMMAS), rng.choice(self.EPSILONS),
                             rng.choice(self.FRACTIONS), rng.choice(self.FRACTIONS),
                             int(rng.choice(self.LENGTHS)) + int(rng.integers(0, 20)),
                             int(rng.choice(self.COUNTS)), rng.choice(self.DELTAS))

    def strategy(self):
        from hypothesis import strategies as st

        unit = st.floats(0, 1)
        return st.builds(self.build, st.sampled_from(self.GAMMAS), st.sampled_from(self.EPSILONS),
                         unit, unit, st.integers(2, 10**4), st.integers(1, 1000),
                         st.sampled_from(self.DELTAS))

    def encode(self, instance: PhaseInstance) -> np.ndarray:
        L, h = simulation_lemma_constant(instance.gamma), 1 / (1 - instance.gamma)
        xi_low = (8 * L + 18) * instance.eps
        fractions = np.array([(instance.xi - xi_low) / (h - xi_low) if h > xi_low else 0.0,
                              instance.u / h])
        return np.clip(np.concatenate([[logit(instance.gamma, 1e-12), math.log(instance.eps),
                                        math.log(instance.n_phase),
                                        math.log(instance.n_phases)],
                                       logit(fractions, 1e-12)]), -30, 30)

    def decode(self, x: np.ndarray, like: PhaseInstance) -> PhaseInstance:
        gamma = float(np.clip(sigmoid(x[0]), 1e-3, 0.999))
        eps = float(np.clip(np.exp(x[1]), 1e-9, 0.1))
        n_phase = int(round(float(np.exp(np.clip(x[2], math.log(2), math.log(1e6))))))
        n_phases = int(round(float(np.exp(np.clip(x[3], 0, math.log(1000))))))
        return self.build(gamma, eps, *sigmoid(x[4:6]), n_phase, n_phases, like.delta)


def _phase_premise(instance: PhaseInstance) -> bool:
    """Corollary F.1's (8L+18) eps <= xi, and a realisable elimination: the constant return
    u - w(n-1) of the first n - 1 episodes and the last episode's return are in [0,
    1/(1-gamma)] (the toolkit's widths w)."""
    L, h = simulation_lemma_constant(instance.gamma), 1 / (1 - instance.gamma)
    if not ((8 * L + 18) * instance.eps <= instance.xi <= h and 0 <= instance.u <= h
            and instance.n_phase >= 2 and instance.n_phases >= 1):
        return False
    widths = _pce_widths(instance)
    before = instance.u - widths["w_before"]
    last = before - instance.n_phase * (widths["s_before"] - widths["s_end"])
    return 0 <= last and before <= h


def _pce_widths(instance: PhaseInstance) -> dict:
    """Ineq. 5's width w(n) = s(n) + eps (L+1) by the toolkit (Constants.widths, theory preset)
    at n - 1 and n, and its statistical part s."""
    c = THEORY.constants(instance.gamma, instance.eps, instance.delta)
    K, n = instance.n_episodes, instance.n_phase
    w_before, w_end = (float(w) for w in c.widths(np.array([n - 1, n]), K)[0])
    offset = instance.eps * (c.L_reward + 1)
    return {"w_before": w_before, "w_end": w_end, "s_before": w_before - offset,
            "s_end": w_end - offset, "L": c.L_reward}


def _phase_ratio(instance: PhaseInstance) -> float:
    """The largest reward regret the events of App. F allow / the explicit bound (1) of p. 26.

    Eliminated phase: the test passed at n - 1 with the mean at u - w(n-1) and Ineq. 22 holds at
    n - 1, so V_r(pi_l) can be u - w(n-1) - eps - s(n-1); the last episode's return (in [0,
    1/(1-gamma)]) then fails the test while Ineq. 22 still holds at n. Surviving phase: V_r >=
    u - w(n) - eps - s(n). V* = min(1/(1-gamma), u + 4 eps L (1 + 1/(xi (1-gamma))))."""
    widths = _pce_widths(instance)
    L, gamma, eps, n = widths["L"], instance.gamma, instance.eps, instance.n_phase
    best = min(1 / (1 - gamma), instance.u + 4 * eps * L * (1 + 1 / (instance.xi * (1 - gamma))))
    eliminated = max(0.0, instance.u - widths["w_before"] - eps - widths["s_before"])
    survivor = max(0.0, instance.u - widths["w_end"] - eps - widths["s_end"])
    regret = n * ((instance.n_phases - 1) * max(0.0, best - eliminated)
                  + max(0.0, best - survivor))
    bound = corollary_f_1_explicit(instance.n_episodes, instance.delta, eps, instance.xi, gamma,
                                   instance.n_phases)["reward_regret"]
    return regret / bound


def exact_phase_ratio(instance: PhaseInstance, last_episode: bool = True) -> Fraction:
    """The same in 50-digit decimals, the widths and bound (1) restated from App. F. With
    ``last_episode=False`` an eliminated phase is charged as bound (1) charges it (the widths at
    its full length n, as if its last episode had passed the test)."""
    with localcontext() as context:
        context.prec = 50
        D = Decimal
        gamma, eps, xi, u = D(instance.gamma), D(instance.eps), D(instance.xi), D(instance.u)
        n, E, delta = D(instance.n_phase), D(instance.n_phases), D(instance.delta)
        one = D(1)
        K = n * E
        h = one / (one - gamma)
        L = h + 2 * gamma / (one - gamma) ** 2
        log_term = (4 * K / delta).ln()

        def statistical(m):
            return (2 * log_term / (m * (one - gamma) ** 2)).sqrt()

        best = min(h, u + 4 * eps * L * (one + one / (xi * (one - gamma))))
        passed = n - 1 if last_episode else n          # the last episode the test passed
        eliminated = max(D(0), u - 2 * statistical(passed) - eps * (L + 2))
        survivor = max(D(0), u - 2 * statistical(n) - eps * (L + 2))
        regret = n * ((E - 1) * max(D(0), best - eliminated) + max(D(0), best - survivor))
        bound = (eps * K * (2 + 5 * L + 4 * L / (xi * (one - gamma)))
                 + 2 * (2 * K * E * log_term).sqrt() / (one - gamma))
        return Fraction(regret / bound)


COROLLARY_F_1 = RatioClaim(
    "corollary-f.1", "Corollary F.1 (App. F's explicit bound (1), p. 26)",
    "PCE's reward regret is at most eps K (2 + 5L + 4L/(xi (1-gamma))) + 2 sqrt(2 K E "
    "ln(4K/delta))/(1-gamma), for the largest regret the events of App. F allow when E - 1 "
    "candidates are eliminated (each after the same number of episodes) and the last survives",
    "paper-statement", PhaseSpace(), _phase_ratio, exact_phase_ratio, _phase_premise,
    agreement=1e-7)

SCHEDULE_CLAIMS = (EQ_30, LEMMA_4_5, THEOREM_4_2, COROLLARY_F_1)

__all__ = ["COROLLARY_F_1", "EQ_30", "LEMMA_4_5", "SCHEDULE_CLAIMS", "THEOREM_4_2",
           "PhaseInstance", "PhaseSpace", "ScheduleInstance", "ScheduleSpace", "exact_eq_30",
           "exact_phase_ratio",
           "toolkit_schedule"]
