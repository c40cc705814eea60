"""The paper's upper bounds as functions with explicit constants (Sections 3-4, App. E, F).

Units: every bound is in the paper's normalised units (reward in [0, 1], utility in [-1, 1]);
regrets are sums over episodes of normalised value gaps. Divide a task-unit regret by the task's
``utility_form.reward_scale`` before comparing. eps is in task distance, xi a normalised margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.errors import InputError


class BoundInputError(InputError):
    """A bound's argument is out of its range."""


def _check(gamma: float, **positive) -> None:
    if not 0 < gamma < 1:
        raise BoundInputError(f"gamma: expected a number in (0, 1); got {gamma!r}")
    for name, value in positive.items():
        if not (np.all(np.isfinite(value)) and np.all(np.asarray(value) > 0)):
            raise BoundInputError(f"{name}: expected a positive number; got {value!r}")


# --- Lemma 3.5 and Lemma C.4 ---------------------------------------------------------------------


def lemma_3_5(eps: float, xi: float, gamma: float, delta: float, covering_number: int) -> dict:
    """The quantities of Lemma 3.5 (valid when (8L + 18) eps <= xi):

    optimality gap of the covering policy <= 4 eps L (1 + 1/(xi (1-gamma))); prediction error of
    (u, v, u_s, v_s) <= eps L; pi_s is (xi - eps L)-feasible; rounds <= 6 + 3 ln C;
    |U_hat| <= 2 C ln(1/delta); coverage >= 1 - 6 delta.
    """
    _check(gamma, eps=eps, xi=xi, delta=delta, covering_number=covering_number)
    L = simulation_lemma_constant(gamma)
    return {
        "L": L,
        "assumption_holds": (8 * L + 18) * eps <= xi,
        "optimality_gap": 4 * eps * L * (1 + 1 / (xi * (1 - gamma))),
        "prediction_error": eps * L,
        "safe_margin": xi - eps * L,
        "rounds": 6 + 3 * math.log(covering_number),
        "cover_size": 2 * covering_number * math.log(1 / delta),
        "coverage": 1 - 6 * delta,
    }


def lemma_c_4(eps: float, xi: float, gamma: float) -> float:
    """Lemma C.4: with 2 L eps <= xi, M_i, M_j in B(M, eps) => pi*_i is
    2 eps L (1 + 2/(xi (1-gamma)))-optimal in M_j."""
    _check(gamma, eps=eps, xi=xi)
    L = simulation_lemma_constant(gamma)
    return 2 * eps * L * (1 + 2 / (xi * (1 - gamma)))


# --- Theorem 4.2 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegretBound:
    """Theorem 4.2 before simplification (App. E): Reg(K) <= (i) + (ii) + (iii) + (iv)."""

    term_i: float
    term_ii: float
    term_iii: float
    term_iv: float

    @property
    def total(self) -> float:
        return self.term_i + self.term_ii + self.term_iii + self.term_iv


def eq_30_constant(v_s, alpha_1, eps: float, gamma: float):
    """A_l of Eq. 30 (App. E): ``((4L+9 - v_s) alpha_1 + v_s - kappa) / (v_s alpha_1 + (v_s -
    kappa - v_s alpha_1) eps)``, kappa = (4L+9) eps; Eq. 30 states alpha_{l,m} >= 1 - A_l eps
    once m >= log_{C_l} eps (with Eq. 28's indexing, one stage later than Eq. 6's)."""
    L = simulation_lemma_constant(gamma)
    kappa = (4 * L + 9) * eps
    return ((4 * L + 9 - v_s) * alpha_1 + v_s - kappa) / (
        v_s * alpha_1 + (v_s - kappa - v_s * alpha_1) * eps)


def theorem_4_2_terms(n_episodes: int, delta: float, eps: float, gamma: float, xi: float,
                      candidates_tried: int, safe_margins, first_weights,
                      log_episodes: float | None = None) -> RegretBound:
    """The four explicit terms of App. E, evaluated with a run's actual quantities.

    Args:
        n_episodes: K.
        delta: the run's delta (widths use ln(4K/delta)).
        eps: cover radius in task distance; gamma: discount; xi: Slater margin (normalised).
        candidates_tried: E, the number of candidates the run tried (<= |U_hat|).
        safe_margins: v_{l,s} of the tried candidates (normalised utility of pi_s).
        first_weights: alpha_{l,1} of the tried candidates (Eq. 6).
        log_episodes: the K inside ln(4K/delta) (default K): a run of K' episodes set up for K
            (its widths and stage lengths use ln(4K/delta)) has the bound at K' with this K.

    (i) 4 eps L K (1 + 1/(xi (1-gamma)));
    (ii) max_l 2 K A_l eps/(1-gamma) + max_l 32 sqrt(E K ln(4K/delta) log_{C_l} eps) /
         ((1-gamma)^2 min_l v_{l,s}), A_l = ((4L+9 - v_s) alpha_1 + v_s - kappa) /
         (v_s alpha_1 + (v_s - kappa - v_s alpha_1) eps);
    (iii) eps (L+1) K + max_l sqrt(2 E K ln(4K/delta) ceil(log_{C_l} eps) / (1-gamma)^2);
    (iv) eps K + the same square root.
    """
    _check(gamma, n_episodes=n_episodes, delta=delta, eps=eps, xi=xi,
           candidates_tried=candidates_tried)
    v_s = np.atleast_1d(np.asarray(safe_margins, dtype=np.float64))
    alpha_1 = np.atleast_1d(np.asarray(first_weights, dtype=np.float64))
    if v_s.shape != alpha_1.shape or v_s.size == 0:
        raise BoundInputError("safe_margins, first_weights: expected equal, non-empty shapes")
    K, E = float(n_episodes), float(candidates_tried)
    L = simulation_lemma_constant(gamma)
    kappa = (4 * L + 9) * eps
    log_term = math.log(4 * (K if log_episodes is None else float(log_episodes)) / delta)
    ratio = (2 * v_s + kappa) / (3 * v_s)
    if np.any(v_s <= kappa):
        raise BoundInputError("safe_margins: Theorem 4.2 needs v_{l,s} > (4L + 9) eps so that "
                              "C_l < 1; the bound is vacuous here")
    stages = np.log(eps) / np.log(ratio)                       # log_{C_l} eps
    A = eq_30_constant(v_s, alpha_1, eps, gamma)
    term_i = 4 * eps * L * K * (1 + 1 / (xi * (1 - gamma)))
    term_ii = (np.max(2 * K * A * eps / (1 - gamma))
               + np.max(32 * np.sqrt(E * K * log_term * stages)) / ((1 - gamma)**2 * v_s.min()))
    root = np.max(np.sqrt(2 * E * K * log_term * np.ceil(stages) / (1 - gamma)**2))
    return RegretBound(term_i=float(term_i), term_ii=float(term_ii),
                       term_iii=float(eps * (L + 1) * K + root), term_iv=float(eps * K + root))


def theorem_4_2_rate(n_episodes, covering_number, eps: float, xi: float, gamma: float):
    """Theorem 4.2's O~ form, unit constant: sqrt(C K)/((1-gamma)^2 xi) + eps K/(xi (1-gamma)^3)."""
    _check(gamma, eps=eps, xi=xi)
    K = np.asarray(n_episodes, dtype=np.float64)
    return (np.sqrt(covering_number * K) / ((1 - gamma)**2 * xi)
            + eps * K / (xi * (1 - gamma)**3))


def corollary_4_3_samples(eps, xi, gamma: float, covering_number) -> np.ndarray:
    """Corollary 4.3 (unit constant): xi^-2 eps^-2 (1-gamma)^-5 C transitions suffice for an
    O(eps)-optimal feasible output with safe exploration."""
    _check(gamma, eps=eps, xi=xi)
    return np.asarray(covering_number) / (np.asarray(xi)**2 * np.asarray(eps)**2
                                          * (1 - gamma)**5)


def corollary_f_1_explicit(n_episodes: int, delta: float, eps: float, xi: float, gamma: float,
                           candidates_tried: int) -> dict:
    """The explicit bounds in the proof of Corollary F.1 (App. F, p. 26) before the O~ step, in
    the paper's normalised units: reward regret sum_k [V* - V_r(pi_k)]_+ <= eps K (2 + 5L +
    4L/(xi (1-gamma))) + 2 sqrt(2 K E ln(4K/delta)) / (1-gamma), and constraint regret
    sum_k [V_c(pi_k)]_- <= eps K (3 + L) + the same square root (E = candidates tried)."""
    _check(gamma, n_episodes=n_episodes, delta=delta, eps=eps, xi=xi,
           candidates_tried=candidates_tried)
    L = simulation_lemma_constant(gamma)
    K = float(n_episodes)
    root = 2 * math.sqrt(2 * K * candidates_tried * math.log(4 * K / delta)) / (1 - gamma)
    return {"reward_regret": eps * K * (2 + 5 * L + 4 * L / (xi * (1 - gamma))) + root,
            "constraint_regret": eps * K * (3 + L) + root}


def corollary_f_1(n_episodes, covering_number, eps: float, xi: float, gamma: float) -> dict:
    """Corollary F.1 (PCE, unit constants): reward regret sqrt(CK)/(1-gamma) +
    eps K/(xi (1-gamma)^3); constraint regret sqrt(CK)/(1-gamma) + eps K/(1-gamma)^2."""
    _check(gamma, eps=eps, xi=xi)
    K = np.asarray(n_episodes, dtype=np.float64)
    root = np.sqrt(covering_number * K) / (1 - gamma)
    return {"reward_regret": root + eps * K / (xi * (1 - gamma)**3),
            "constraint_regret": root + eps * K / (1 - gamma)**2}


def table_1_samples(eps, xi, gamma: float, n_states: int, n_actions: int) -> dict:
    """App. A, Table 1 (unit constants): samples for an eps-optimal policy with safe exploration."""
    _check(gamma, eps=eps, xi=xi)
    eps, xi = np.asarray(eps, dtype=np.float64), np.asarray(xi, dtype=np.float64)
    h = 1 / (1 - gamma)
    S, A = n_states, n_actions
    return {
        "OptPess-LP": xi**-2 * eps**-2 * h**7 * S**3 * A,
        "DOPE": xi**-2 * eps**-2 * h**7 * S**2 * A,
        "DOPE+": xi**-2 * eps**-2 * h**6 * S**2 * A,
        "LB-SGD": h**22 * np.minimum(xi**-6, eps**-6),
    }
