"""Claims attacked by the falsification engine (:mod:`safepce.bounds.falsify`) alone: Lemma C.3
(as stated, and corrected), Eq. 6 against App. D, Eq. 30, Lemma C.2 and Lemma C.4; and
:func:`falsified`, which turns a search's result into a :class:`Claim`."""

from __future__ import annotations

import math

from ..falsify import (
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
from .record import Claim
from .runner import VerifyContext


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
    from ..falsify_safety import EQ_30

    return [falsified(context, EQ_30)]


def claim_lemma_c2(context: VerifyContext) -> list[Claim]:
    """Lemma C.2's cover size on D uniform over a box's vertices whose centre (a task of the
    class, Def. 4.1) covers them all: refuted (bounds.falsify_cover)."""
    from ..falsify_cover import LEMMA_C2

    return [falsified(context, LEMMA_C2)]


def claim_lemma_c4(context: VerifyContext) -> list[Claim]:
    """Lemma C.4 (the optimality item of Lemma 3.5 rests on it) attacked over task pairs, their
    midpoint and a Slater policy (bounds.falsify_optimality)."""
    from ..falsify_optimality import LEMMA_C4

    return [falsified(context, LEMMA_C4)]


