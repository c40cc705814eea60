"""The algorithms whose guarantees safepce checks, for Ni & Kamgarpour 2026, "Constrained Meta RL
with Provable Test-Time Safety" (arXiv:2601.21845): the training phase (Algorithm 1 and its
oracles), the test-time algorithms and their registry (Safe-PCE, PCE, the experiment's
baselines), the harness that records exact per-episode values, the one results format, and the
experiment runners and figures."""

from . import results
from .algorithms import (
    DOPE,
    LBSGD,
    PCE,
    REGISTRY,
    SCALED,
    THEORY,
    AlgorithmSpec,
    DOPEPlus,
    SafeMetaRL,
    SafePCE,
    SafePCEPreset,
    make_algorithm,
    register,
)
from .algorithms.safe_pce import (
    experiment_mixture_weights,
    mixture_weights,
    mixture_weights_recursive,
    stage_limit,
)
from .exact_blocks import BlockRun, run_exact_blocks, settle_episode
from .experiment import ExperimentSettings, ViolationSettings, reproduce, violation_rates
from .harness import Deployment, RunRecord, TestTimeAlgorithm, run_test_phase
from .oracles import (
    DesignatedSafePolicy,
    DistanceCoverage,
    ExactLPOracle,
    MinimumCostSafePolicy,
    ParameterCoverage,
    WorstCaseSafePolicy,
)
from .training import TrainingResult, check_lemma_3_5, train

__all__ = [
    "DOPE", "LBSGD", "PCE", "REGISTRY", "SCALED", "THEORY", "AlgorithmSpec", "BlockRun",
    "DOPEPlus",
    "Deployment", "DesignatedSafePolicy", "DistanceCoverage", "ExactLPOracle",
    "ExperimentSettings", "MinimumCostSafePolicy", "ParameterCoverage", "RunRecord",
    "SafeMetaRL", "SafePCE", "SafePCEPreset", "TestTimeAlgorithm", "TrainingResult",
    "ViolationSettings",
    "WorstCaseSafePolicy", "check_lemma_3_5", "experiment_mixture_weights", "make_algorithm",
    "mixture_weights", "mixture_weights_recursive", "register", "reproduce", "results",
    "run_exact_blocks", "run_test_phase", "settle_episode", "stage_limit", "train",
    "violation_rates",
]
