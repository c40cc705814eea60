"""``safepce verify``: the claims of Ni & Kamgarpour 2026 (arXiv:2601.21845) checked on exact
quantities, one module per family of claims.

:data:`CLAIMS` lists (name, paper label, function); :func:`run_verify` runs them in order. A
function takes the :class:`VerifyContext` (sizes, workers, shared training results, the figures
it adds as data) and returns :class:`Claim` records. Adding a claim = one function (in the module
of its kind, or a new one) and one row of :data:`CLAIMS`. ``quick`` sizes finish in well under 3
minutes on 2 cores.

Modules: :mod:`.record` (the record and its table), :mod:`.runner` (the context, the resume
store, the figures), :mod:`.falsified` (claims attacked by :mod:`safepce.bounds.falsify` alone),
:mod:`.runnable` (the runnable family and the slack pair), :mod:`.hard` (App. G's family, the
sandwich), :mod:`.experiment` (Section 6, the erratum), :mod:`.certified` (beyond the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

from safepce.theory.settings import setting

from ..falsify import FULL, QUICK
from .certified import claim_certified
from .experiment import claim_erratum, claim_published_safety
from .falsified import claim_eq_6, claim_eq_30, claim_lemma_c2, claim_lemma_c3, claim_lemma_c4
from .hard import claim_hard_family, claim_sandwich
from .record import Claim, ClaimCheck, claims_json, claims_table
from .runnable import (
    claim_corollary_f_1,
    claim_lemma_3_5,
    claim_lemma_4_5,
    claim_scaled_preset,
    claim_theorem_4_2,
)
from .runner import VerifyContext, run_verify

#: every claim ``verify`` checks, in order
CLAIMS: tuple[ClaimCheck, ...] = (
    ClaimCheck("lemma-c3", "Lemma C.3", claim_lemma_c3),
    ClaimCheck("eq-6", "Eq. 6 / App. D", claim_eq_6),
    ClaimCheck("eq-30", "Eq. 30 / App. E", claim_eq_30),
    ClaimCheck("lemma-3.5", "Lemma 3.5", claim_lemma_3_5),
    ClaimCheck("lemma-c2", "Lemma C.2", claim_lemma_c2),
    ClaimCheck("lemma-c4", "Lemma C.4", claim_lemma_c4),
    ClaimCheck("lemma-4.5", "Lemma 4.5", claim_lemma_4_5),
    ClaimCheck("theorem-4.2", "Theorem 4.2 / App. E", claim_theorem_4_2),
    ClaimCheck("corollary-f.1", "Corollary F.1 / App. F", claim_corollary_f_1),
    ClaimCheck("sandwich", "Theorem 5.1 <= sample complexity <= App. E", claim_sandwich),
    ClaimCheck("scaled-preset", "Lemma 4.5 (constants shrunk)", claim_scaled_preset),
    ClaimCheck("hard-family", "Theorem 5.1, App. G", claim_hard_family),
    ClaimCheck("published-safety", "Section 6", claim_published_safety),
    ClaimCheck("certified", "Certified Safe-PCE (beyond the paper)", claim_certified),
    ClaimCheck("erratum", "Erratum (docs/erratum.md)", claim_erratum),
)


def claim_names() -> tuple[str, ...]:
    return tuple(check.name for check in CLAIMS)


@dataclass(frozen=True)
class VerifySettings:
    """Settings of ``verify``."""

    quick: bool = setting(False, "small sizes and the quick search budget ("
                          + QUICK.describe() + " per ratio claim; full: "
                          + FULL.describe() + ")")
    claims: tuple[str, ...] = setting((), "run only these claims (default: all)",
                                      choices=claim_names)


__all__ = ["CLAIMS", "Claim", "ClaimCheck", "VerifyContext", "VerifySettings", "claim_names",
           "claims_json", "claims_table", "run_verify"]
