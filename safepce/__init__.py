"""safepce: exact, fast checks of constrained meta-RL with provable test-time safety
(Ni & Kamgarpour, ICML 2026, arXiv:2601.21845) on finite CMDPs.

Three subpackages, with data flowing one way (``tabular`` <- ``theory`` <- ``bounds``):

- :mod:`safepce.tabular`: finite CMDPs in the paper's units (reward in [0, 1], utility in
  [-1, 1], feasible iff V_c >= 0, Section 2), exact evaluation, the occupancy LP, the task
  distance of Lemma C.3, the numba simulator, task families and distributions;
- :mod:`safepce.theory`: Algorithm 1 (training) and its oracles, Safe-PCE (Algorithm 2), PCE
  (Algorithm 4), the experiment's baselines, the test-phase harness and the results format;
- :mod:`safepce.bounds`: the paper's upper and lower bounds as functions, covering numbers
  (Def. 4.1), the hard family of App. G, ``verify`` and the command line.

The subpackages and the entry points below are imported on first use, so ``import safepce``
is cheap.

Examples
--------
>>> import safepce
>>> task = safepce.gridworld(0.3)
>>> round(safepce.solve(task).reward_value, 5)
51.96282
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:
    __version__ = metadata.version("safepce")
except metadata.PackageNotFoundError:   # imported from a source tree that was not installed
    __version__ = "unknown"

SUBPACKAGES = ("tabular", "theory", "bounds")

# entry point -> subpackage that defines it
ENTRY_POINTS = {
    "CMDP": "tabular", "UtilityForm": "tabular", "InputError": "tabular",
    "evaluate": "tabular", "solve": "tabular", "simulate": "tabular", "distance": "tabular",
    "gridworld": "tabular", "random_cmdp": "tabular",
    "train": "theory", "run_test_phase": "theory", "make_algorithm": "theory",
    "REGISTRY": "theory", "SafePCE": "theory", "PCE": "theory",
    "reproduce": "theory", "violation_rates": "theory",
    "theorem_4_2_terms": "bounds", "covering_number": "bounds", "hard_family": "bounds",
    "sample_lower_bound": "bounds", "run_verify": "bounds",
}

__all__ = ["__version__", *SUBPACKAGES, *ENTRY_POINTS]


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in ENTRY_POINTS:
        return getattr(importlib.import_module(f"{__name__}.{ENTRY_POINTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
