"""Finite constrained MDPs: data model, exact evaluation, the occupancy LP, task distance,
the numba simulator and task families (PAPER.md sections 1 and 7)."""

from .cmdp import CMDP, InvalidCMDPError, InvalidPolicyError, UtilityForm
from .distance import distance
from .evaluate import BatchEvaluation, Evaluation, evaluate, evaluate_batch
from .families import gridworld, gridworld_kernel, random_cmdp
from .policy import Mixture, deterministic_policy, uniform_policy, validate_policy
from .simulate import SimulationResult, TrajectoryBatch, simulate, simulate_trajectories
from .solve import InfeasibleCMDPError, Solution, SolverError, minimum_cost, solve

__all__ = [
    "CMDP",
    "BatchEvaluation",
    "Evaluation",
    "InfeasibleCMDPError",
    "InvalidCMDPError",
    "InvalidPolicyError",
    "Mixture",
    "SimulationResult",
    "TrajectoryBatch",
    "Solution",
    "SolverError",
    "UtilityForm",
    "deterministic_policy",
    "distance",
    "evaluate",
    "evaluate_batch",
    "gridworld",
    "gridworld_kernel",
    "minimum_cost",
    "random_cmdp",
    "simulate",
    "simulate_trajectories",
    "solve",
    "uniform_policy",
    "validate_policy",
]
