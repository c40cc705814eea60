"""Task distance of Feng et al. as used by the paper (Section 2 of the paper, Lemma C.3)."""

from __future__ import annotations

import numpy as np

from .cmdp import CMDP, InvalidCMDPError

_UNITS = ("paper", "task")


def distance(m1: CMDP, m2: CMDP, units: str = "paper") -> float:
    """``d(M1, M2) = max{||r1 - r2||_inf, ||c1 - c2||_inf, TV(rho1, rho2), max_{s,a} TV(P1, P2)}``.

    TV is half the L1 norm. ``c`` is the utility ``b (1 - gamma) - cost``. With ``units="paper"``
    (default) rewards and utilities are each task's normalised utility form (r in [0, 1], c in
    [-1, 1]), the form in which Lemma C.3 ``|V^{M1}(pi) - V^{M2}(pi)| <= L d(M1, M2)`` holds
    with ``L = 1/(1-gamma) + 2 gamma/(1-gamma)^2``; ``units="task"`` compares raw task units.
    Both tasks must share S, A, K and gamma.

    Examples
    --------
    Two gridworlds 0.2 apart in noise are 0.75 x 0.2 apart (their kernels differ by 3/4 of the
    noise difference in total variation; rewards, utilities and rho agree):

    >>> from safepce import tabular
    >>> round(tabular.distance(tabular.gridworld(0.1), tabular.gridworld(0.3)), 12)
    0.15
    """
    for name, task in (("m1", m1), ("m2", m2)):
        if not isinstance(task, CMDP):
            raise InvalidCMDPError(name, "a tabular.CMDP", detail=f"got {type(task).__name__}")
    if units not in _UNITS:
        raise InvalidCMDPError("units", f"one of {_UNITS}", detail=f"got {units!r}")
    shape1 = (m1.n_states, m1.n_actions, m1.n_constraints)
    shape2 = (m2.n_states, m2.n_actions, m2.n_constraints)
    if shape1 != shape2:
        raise InvalidCMDPError("m2", f"the same (S, A, K) as m1 = {shape1}", detail=f"got {shape2}")
    if m1.gamma != m2.gamma:
        raise InvalidCMDPError("m2.gamma", f"the same discount as m1 ({m1.gamma})",
                               detail=f"got {m2.gamma}")
    if units == "paper":
        r1, c1 = m1.utility_form.reward, m1.utility_form.utility
        r2, c2 = m2.utility_form.reward, m2.utility_form.utility
    else:
        r1, c1 = m1.r, m1.budgets * (1 - m1.gamma) - m1.costs
        r2, c2 = m2.r, m2.budgets * (1 - m2.gamma) - m2.costs
    return float(max(
        np.max(np.abs(r1 - r2)),
        np.max(np.abs(c1 - c2)),
        0.5 * np.sum(np.abs(m1.rho - m2.rho)),
        _kernel_tv(m1, m2),
    ))


def _kernel_tv(m1: CMDP, m2: CMDP) -> float:
    """``max_{s,a} TV(P1(.|s,a), P2(.|s,a))``; one sparse difference when either is sparse."""
    if not (m1.is_sparse or m2.is_sparse):
        return float(0.5 * np.max(np.sum(np.abs(m1.P - m2.P), axis=-1)))
    gap = abs(m1.transition_matrix - m2.transition_matrix)
    return float(0.5 * np.max(gap.sum(axis=1)))


def simulation_lemma_constant(gamma: float) -> float:
    """``L = 1/(1-gamma) + 2 gamma/(1-gamma)^2`` of Lemma C.3 (Section 2 of the paper)."""
    if not 0.0 < gamma < 1.0:
        raise InvalidCMDPError("gamma", "a number in (0, 1)", detail=f"got {gamma!r}")
    return 1.0 / (1.0 - gamma) + 2.0 * gamma / (1.0 - gamma) ** 2


def corrected_simulation_constants(gamma: float) -> tuple[float, float]:
    """``(L_r, L_c) = (2/(1-gamma) + gamma/(1-gamma)^2, 3/(1-gamma) + 2 gamma/(1-gamma)^2)``:
    constants for which ``|V_r^{M1}(pi) - V_r^{M2}(pi)| <= L_r d(M1, M2)`` and
    ``|V_c^{M1}(pi) - V_c^{M2}(pi)| <= L_c d(M1, M2)`` hold for every policy (paper units:
    r in [0, 1], c in [-1, 1]).

    Lemma C.3 of the paper (App. C.2, p. 15) states one constant, ``L`` of
    :func:`simulation_lemma_constant`, for both, and it misses the initial-distribution term.
    Derivation: ``V^1 - V^2 = (rho1 - rho2) . V^1 + rho2 . (V^1 - V^2)``; the first term is at
    most TV(rho1, rho2) times the span of V^1 (``1/(1-gamma)`` for rewards, ``2/(1-gamma)`` for
    utilities); by the Bellman equations ``||V^1 - V^2||_inf <= (||r1 - r2||_inf + gamma
    max_{s,a} TV(P1, P2) span(V^1)) / (1 - gamma)``. Both constants are tight: ``L_c`` is
    approached as d -> 0 by two absorbing states of utility +1 and -1 with rho, the utility
    and the kernel each moved by d towards the -1 state (``bounds.falsify``'s search finds it).
    """
    if not 0.0 < gamma < 1.0:
        raise InvalidCMDPError("gamma", "a number in (0, 1)", detail=f"got {gamma!r}")
    horizon = 1.0 / (1.0 - gamma)
    return 2.0 * horizon + gamma * horizon**2, 3.0 * horizon + 2.0 * gamma * horizon**2
