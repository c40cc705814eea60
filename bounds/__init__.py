"""The bounds of Ni & Kamgarpour 2026 (arXiv:2601.21845) as functions with explicit constants
(Theorem 4.2 / App. E, Corollaries 4.3 and F.1, Lemma 3.5, Table 1), covering numbers
(Def. 4.1), the lower-bound hard family of App. G with its explicit Theorem 5.1 bound, sample
complexity from exact run records, ``verify`` (a table of claims), sweeps, the plots that put data
beside a bound, and the command line (``safepce.bounds.cli``)."""

from . import claims
from .claims import CLAIMS, Claim, run_verify
from .covering import covering_number, greedy_covering_estimate
from .hard_instance import (
    HardFamily,
    check_hard_family,
    hard_distribution,
    hard_family,
    sample_lower_bound,
    sequential_identification,
)
from .sample_complexity import (
    episodes_to_accuracy,
    fitted_slope,
    transitions_to_accuracy,
    violation_rate,
)
from .upper import (
    corollary_4_3_samples,
    corollary_f_1,
    corollary_f_1_explicit,
    eq_30_constant,
    lemma_3_5,
    lemma_c_4,
    table_1_samples,
    theorem_4_2_rate,
    theorem_4_2_terms,
)

__all__ = [
    "CLAIMS", "Claim", "HardFamily", "check_hard_family", "corollary_4_3_samples",
    "corollary_f_1", "corollary_f_1_explicit", "covering_number", "eq_30_constant",
    "episodes_to_accuracy", "fitted_slope",
    "greedy_covering_estimate", "hard_distribution", "hard_family", "lemma_3_5", "lemma_c_4",
    "run_verify", "sample_lower_bound", "sequential_identification", "table_1_samples",
    "theorem_4_2_rate", "theorem_4_2_terms", "transitions_to_accuracy", "claims",
    "violation_rate",
]
