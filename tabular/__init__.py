"""Finite constrained MDPs: data model, exact evaluation, the occupancy LP, task distance,
the numba simulator, task families and their distributions (Ni & Kamgarpour 2026,
arXiv:2601.21845, Sections 2 and 6)."""

from . import families
from .cmdp import CMDP, InvalidCMDPError, InvalidPolicyError, UtilityForm
from .distance import distance
from .distributions import (
    FiniteUniform,
    GridworldNoise,
    InvalidDistributionError,
    TaskDistribution,
    UniformInterval,
    runnable_family,
)
from .errors import InputError
from .evaluate import BatchEvaluation, Evaluation, evaluate, evaluate_batch
from .families import gridworld, gridworld_kernel, random_cmdp
from .outcomes import Outcomes, episode_outcomes, mix_outcomes
from .policy import Mixture, deterministic_policy, uniform_policy, validate_policy
from .simulate import SimulationResult, TrajectoryBatch, simulate, simulate_trajectories
from .soft import SoftSolution, solve_soft
from .solve import (
    InfeasibleCMDPError,
    Solution,
    SolverError,
    minimum_cost,
    solve,
    solve_sequence,
)

__all__ = [
    "CMDP",
    "FiniteUniform",
    "GridworldNoise",
    "InputError",
    "InvalidDistributionError",
    "TaskDistribution",
    "UniformInterval",
    "families",
    "runnable_family",
    "BatchEvaluation",
    "Evaluation",
    "InfeasibleCMDPError",
    "InvalidCMDPError",
    "InvalidPolicyError",
    "Mixture",
    "Outcomes",
    "SimulationResult",
    "TrajectoryBatch",
    "Solution",
    "SolverError",
    "UtilityForm",
    "deterministic_policy",
    "distance",
    "episode_outcomes",
    "evaluate",
    "evaluate_batch",
    "gridworld",
    "gridworld_kernel",
    "minimum_cost",
    "mix_outcomes",
    "random_cmdp",
    "simulate",
    "simulate_trajectories",
    "solve",
    "solve_sequence",
    "solve_soft",
    "SoftSolution",
    "uniform_policy",
    "validate_policy",
]
