"""Test-time algorithms on the harness interface and their one registry: Safe-PCE (Algorithm 2)
and PCE (Algorithm 4) of Ni & Kamgarpour 2026 (arXiv:2601.21845), and the baselines of its
experiment (Safe Meta-RL, DOPE+, DOPE, LB-SGD) with the authors' presets and our variants, and
the certified Safe-PCE (provably safe with data-driven certificates)."""

from .dope import DOPE, DOPE_EXPERIMENT, DOPE_THEORY, DOPEPlus, DOPEPreset
from .lb_sgd import LB_SGD_CERTIFIED, LB_SGD_EXPERIMENT, LBSGD, LBSGDPreset
from .registry import (
    REGISTRY,
    AlgorithmSpec,
    UnknownAlgorithmError,
    make_algorithm,
    register,
    spec,
)
from .safe_meta_rl import (
    SAFE_META_RL_EXPERIMENT,
    SAFE_META_RL_SMOOTHED,
    SafeMetaRL,
    SafeMetaRLPreset,
)
from .safe_pce import (
    PCE,
    PCE_EXPERIMENT,
    SAFE_PCE_EXPERIMENT,
    SAFE_PCE_POOLED_GATE,
    SCALED,
    THEORY,
    SafePCE,
    SafePCEPreset,
)
from .safe_pce_certified import CERTIFIED, CertifiedPreset, CertifiedSafePCE

__all__ = [
    "DOPE", "DOPE_EXPERIMENT", "DOPE_THEORY", "DOPEPlus", "DOPEPreset", "LBSGD",
    "LB_SGD_EXPERIMENT", "LBSGDPreset", "PCE", "PCE_EXPERIMENT", "REGISTRY",
    "SAFE_META_RL_EXPERIMENT", "SAFE_PCE_EXPERIMENT", "SCALED", "THEORY", "AlgorithmSpec",
    "SafeMetaRL", "SafeMetaRLPreset", "SafePCE", "SafePCEPreset", "UnknownAlgorithmError",
    "make_algorithm", "register", "spec", "CERTIFIED", "CertifiedPreset", "CertifiedSafePCE",
    "LB_SGD_CERTIFIED", "SAFE_META_RL_SMOOTHED", "SAFE_PCE_POOLED_GATE",
]
