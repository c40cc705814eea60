"""The record of a checked claim (:class:`Claim`), the row of the claims table that names the
function checking it (:class:`ClaimCheck`), and how records are printed and stored."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

#: what a claim checks: the toolkit's own implementation of a result (``check``: failing means
#: the toolkit or the theorem is wrong and ``verify`` exits 1), or a statement the paper makes
#: about its experiment (``paper-statement``: failing means exact computation refutes it)
KINDS = ("check", "paper-statement")


@dataclass
class Claim:
    """One checked statement: ``claim`` (the paper's label first), ``passed``, ``runs``
    (instances or runs), ``worst_margin`` (smallest slack of the checked inequality over all
    runs; >= 0 when it holds, in the units the note gives) and ``note``."""

    claim: str
    passed: bool
    runs: int
    worst_margin: float
    note: str = ""
    kind: str = "check"
    #: the data can neither confirm nor refute it (e.g. a median beyond the simulated budget)
    inconclusive: bool = False
    #: how hard the claim was attacked: a falsification budget (bounds.falsify), or the fixed
    #: cases a claim not yet written as a ratio is checked on
    search_budget: str = "fixed cases (no search)"
    #: largest lhs / rhs found (holds iff <= 1); NaN for a claim not written as a ratio
    worst_ratio: float = math.nan
    #: where: a saved counterexample (path) or a description of the worst instance
    worst_instance: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}; got {self.kind!r}")
        self.passed = bool(self.passed)
        self.inconclusive = bool(self.inconclusive)
        self.runs = int(self.runs)
        self.worst_margin = float(self.worst_margin)
        self.worst_ratio = float(self.worst_ratio)

    @property
    def status(self) -> str:
        """passed, inconclusive, failed (a check of the toolkit) or refuted (a paper
        statement)."""
        if self.passed:
            return "passed"
        if self.inconclusive:
            return "inconclusive"
        return "refuted" if self.kind == "paper-statement" else "failed"

    @classmethod
    def from_dict(cls, record: dict) -> Claim:
        """The claim of :meth:`to_dict`'s record (``status`` is recomputed, not read)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def to_dict(self) -> dict:
        """One flat JSON record, with the computed ``status``."""
        return asdict(self) | {"status": self.status}


@dataclass(frozen=True)
class ClaimCheck:
    """One row of the claims table: a name, the paper's label, and the function checking it
    (it takes a :class:`~safepce.bounds.claims.runner.VerifyContext`, returns claims)."""

    name: str
    paper_label: str
    check: object


def claims_table(claims: list[Claim]) -> str:
    rows = [f"{'claim':76s} {'runs':>7s} {'status':>8s} {'worst margin':>13s}"]
    for c in claims:
        rows.append(f"{c.claim[:76]:76s} {c.runs:7d} {c.status:>8s} {c.worst_margin:13.4g}")
    return "\n".join(rows)


def claims_json(claims: list[Claim]) -> list[dict]:
    """One flat record per claim, with its computed ``status``."""
    return [c.to_dict() for c in claims]
