"""Test-time algorithms on the harness interface and their one registry: Safe-PCE (Algorithm 2)
and PCE (Algorithm 4) of Ni & Kamgarpour 2026 (arXiv:2601.21845), and the baselines of its
experiment (Safe Meta-RL, DOPE+, DOPE, LB-SGD)."""

from .dope import DOPE, DOPE_EXPERIMENT, DOPE_THEORY, DOPEPlus, DOPEPreset
from .lb_sgd import LB_SGD_EXPERIMENT, LBSGD, LBSGDPreset
from .registry import (
    REGISTRY,
    AlgorithmSpec,
    UnknownAlgorithmError,
    make_algorithm,
    register,
    spec,
)
from .safe_meta_rl import SAFE_META_RL_EXPERIMENT, SafeMetaRL, SafeMetaRLPreset
from .safe_pce import (
    PCE,
    PCE_EXPERIMENT,
    SAFE_PCE_EXPERIMENT,
    SCALED,
    THEORY,
    SafePCE,
    SafePCEPreset,
)

__all__ = [
    "DOPE", "DOPE_EXPERIMENT", "DOPE_THEORY", "DOPEPlus", "DOPEPreset", "LBSGD",
    "LB_SGD_EXPERIMENT", "LBSGDPreset", "PCE", "PCE_EXPERIMENT", "REGISTRY",
    "SAFE_META_RL_EXPERIMENT", "SAFE_PCE_EXPERIMENT", "SCALED", "THEORY", "AlgorithmSpec",
    "SafeMetaRL", "SafeMetaRLPreset", "SafePCE", "SafePCEPreset", "UnknownAlgorithmError",
    "make_algorithm", "register", "spec",
]
