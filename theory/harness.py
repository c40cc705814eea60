"""The test-phase harness: run a test-time algorithm online on a test CMDP, record exact values.

The algorithm only ever sees the discounted returns of the episodes it ran (online access,
Section 2 of the paper); the harness, which knows the model, records for every episode k the exact
values of the deployed (mixture) policy pi_k on the test task, the per-episode reward regret
``[V*_r - V_r(pi_k)]_+`` (Eq. 1) and whether ``V_cost(pi_k) > budget`` (a violation of Def. 2.2).
All values are in task units (reward; discounted cost).

Protocol. Each round the algorithm proposes a :class:`Deployment` (component policies, weights,
and the most episodes it may run before it could change its mind); the harness simulates that
block with the numba simulator and hands the returns back; the algorithm answers how many of them
it consumed (it stops at the first episode after which it would deploy something else). Episode k
always uses the random stream of global index k (``safepce.tabular.simulate(first_episode=k)``), so
the
outcome is identical to playing one episode at a time; episodes simulated beyond the consumed
ones are discarded unseen.
"""

from __future__ import annotations

import json
import time
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from safepce import tabular
from safepce.tabular import CMDP, Mixture
from safepce.tabular.errors import InputError, npz_problem, positive_int

#: a deployed policy counts as violating when its exact cost exceeds the budget by more than this
VIOLATION_TOLERANCE = 1e-9
DEFAULT_BLOCK = 8192


@dataclass(frozen=True, eq=False)
class Deployment:
    """What an algorithm deploys next: ``sum_j weights[j] policies[j]`` (one draw per episode),
    for at most ``episodes`` episodes. ``keys`` name the components (same key, same policy) so
    the harness evaluates each distinct policy once."""

    policies: tuple[np.ndarray, ...]
    weights: np.ndarray
    keys: tuple[Hashable, ...]
    episodes: int


class TestTimeAlgorithm(ABC):
    """Interface shared by Safe-PCE, PCE and the baselines."""

    name: str = "algorithm"
    #: True when the algorithm handles tasks with K > 1 constraints (the paper's have one)
    multi_constraint: bool = False
    preset: str = ""
    #: True for learners that need every step (Monte-Carlo advantages, REINFORCE, counts): the
    #: harness then calls observe(..., trajectories=TrajectoryBatch) on the same episodes
    needs_trajectories: bool = False
    #: the deployment key of pi_s alone (episodes deploying it count as safe-only); set from the
    #: algorithm registry's entry by ``make_algorithm``
    safe_key: Hashable = "safe"

    @abstractmethod
    def reset(self, n_episodes: int, seed) -> None:
        """Prepare for a run of ``n_episodes`` episodes (seed for any internal randomness)."""

    @abstractmethod
    def deployment(self) -> Deployment:
        """The policy to run next and for how many episodes at most."""

    @abstractmethod
    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray) -> int:
        """Take the returns of the proposed block (task units, Eq. 4) in order; return how many
        were consumed (>= 1): the algorithm must ignore the rest."""

    def log(self) -> dict:
        """Events and settings of the run (eliminations, stages, weights, preset)."""
        return {}


@dataclass
class RunRecord:
    """One run: per-episode exact values of the deployed policies (task units) and the log."""

    algorithm: str
    preset: str
    optimal_value: float
    #: the budget, or the K budgets (a list) of a task with K constraints; ``cost_value`` is
    #: then (n, K)
    budget: float | list
    reward_value: np.ndarray
    cost_value: np.ndarray
    safe_only: np.ndarray
    horizon: int
    seed: int
    wall_seconds: float
    log: dict = field(default_factory=dict)

    @property
    def regret(self) -> np.ndarray:
        """Per-episode reward regret [V*_r - V_r(pi_k)]_+ (Eq. 1)."""
        return np.clip(self.optimal_value - self.reward_value, 0.0, None)

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)

    @property
    def violated(self) -> np.ndarray:
        """Per episode: the deployed policy violates (some constraint, when there are K)."""
        excess = self.cost_value > np.asarray(self.budget) + VIOLATION_TOLERANCE
        return excess.any(axis=-1) if excess.ndim == 2 else excess

    @property
    def first_violation_episode(self) -> int | None:
        """The first episode (1-based) whose deployed policy violates, None if none does."""
        violating = np.flatnonzero(self.violated)
        return int(violating[0]) + 1 if violating.size else None

    @property
    def constraint_regret(self) -> float:
        """sum_k [V_cost(pi_k) - b]_+ (App. F, cost form; summed over constraints when there
        are K)."""
        return float(np.sum(np.clip(self.cost_value - np.asarray(self.budget), 0.0, None)))

    def save(self, path) -> None:
        """Write the record as one .npz (arrays, and the rest as a JSON header), atomically."""
        from .results import atomic_write, jsonable

        header = json.dumps(jsonable({
            "algorithm": self.algorithm, "preset": self.preset,
            "optimal_value": self.optimal_value, "budget": self.budget,
            "horizon": self.horizon, "seed": self.seed, "wall_seconds": self.wall_seconds,
            "log": self.log}))
        atomic_write(path, lambda handle: np.savez(
            handle, header=np.array(header), reward_value=self.reward_value,
            cost_value=self.cost_value, safe_only=self.safe_only), binary=True)

    @classmethod
    def load(cls, path) -> RunRecord:
        """Read a record written by :meth:`save` (a damaged file is named in the error)."""
        problem = npz_problem(path)
        if problem:
            raise InputError(f"{path}: not a readable run record: it {problem}; remove it to "
                             "rerun that run")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in ("reward_value", "cost_value", "safe_only")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path}: not a readable run record ({type(exc).__name__}); remove "
                             "it to rerun that run") from None
        return cls(**header, **arrays)

    def summary(self) -> dict:
        return {
            "algorithm": self.algorithm,
            "preset": self.preset,
            "episodes": int(self.reward_value.size),
            "final_regret": float(self.cumulative_regret[-1]) if self.reward_value.size else 0.0,
            "violations": int(np.count_nonzero(self.violated)),
            "max_cost_value": float(self.cost_value.max(initial=-np.inf)),
            "constraint_regret": self.constraint_regret,
            "safe_only_episodes": int(np.count_nonzero(self.safe_only)),
            "optimal_value": self.optimal_value,
            "seed": self.seed,
            "wall_seconds": self.wall_seconds,
        }


@dataclass
class AuthorsReportRecord(RunRecord):
    """A run as the authors' Safe-PCE loop stores it (see :func:`authors_report`): the history
    ends before the first infeasible mixture and is 0 from there on (cumulative regret and
    cost alike). ``stopped_at`` is that episode (1-based), None when no deployed policy violates."""

    stopped_at: int | None = None

    @property
    def cumulative_regret(self) -> np.ndarray:
        cumulative = np.cumsum(self.regret)
        if self.stopped_at is not None:
            cumulative[self.stopped_at - 1:] = 0.0
        return cumulative

    @property
    def first_violation_episode(self) -> int | None:
        return self.stopped_at


def authors_report(record: RunRecord) -> AuthorsReportRecord:
    """``record`` as the authors' loop would have stored it: their loop computes the exact cost of
    the mixture it is about to deploy and, when it exceeds the budget, stops the run *before*
    writing that cost (or the regret) into its preallocated zero history. So the stored cost
    never exceeds the budget and the stored cumulative regret drops to 0 at the stop; no curve
    drawn from it shows the violation. The full record is untouched."""
    if isinstance(record, AuthorsReportRecord):
        return record
    stop = record.first_violation_episode
    cost = record.cost_value.copy()
    reward = record.reward_value.copy()
    if stop is not None:
        cost[stop - 1:] = 0.0
        reward[stop - 1:] = record.optimal_value
    fields = {name: getattr(record, name) for name in RunRecord.__dataclass_fields__}
    return AuthorsReportRecord(**(fields | {"reward_value": reward, "cost_value": cost}),
                               stopped_at=stop)


def run_test_phase(algorithm: TestTimeAlgorithm, task: CMDP, n_episodes: int, horizon: int,
                   seed: int, optimal_value: float | None = None,
                   safe_key: Hashable | None = None, block: int = DEFAULT_BLOCK) -> RunRecord:
    """Run ``algorithm`` online on ``task`` for ``n_episodes`` episodes of ``horizon`` steps.

    ``seed`` (a non-negative int) fixes the simulator's per-episode streams and the algorithm's
    own randomness. ``optimal_value`` (V*_r of the task) is solved for when not given.
    ``safe_key``: episodes whose deployment is that component alone count as safe-only
    (default: the algorithm's ``safe_key``, which its registry entry declares).

    BLAS runs single-threaded inside (threadpoolctl): the linear algebra of a run is on tiny
    matrices, where a second BLAS thread only spins (measured: reproduce's six algorithms took
    49.6 CPU-s with two BLAS threads and 32.6 with one, the same wall time); runs parallelise
    across processes instead.

    Examples
    --------
    >>> from safepce.tabular import families
    >>> from safepce.theory import make_algorithm, train
    >>> from safepce.theory.oracles import DistanceCoverage
    >>> D = families.make("runnable")
    >>> training = train(D, DistanceCoverage(0.01), 0.1, seed=0, progress=False)
    >>> algorithm = make_algorithm("safe-pce-certified", training, D, 40, 0.1)
    >>> record = run_test_phase(algorithm, D.build([0.5]), 2000, 40, seed=0)
    >>> int(record.violated.sum()), record.reward_value.size
    (0, 2000)
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_test_phase(algorithm, task, n_episodes, horizon, seed, optimal_value,
                               algorithm.safe_key if safe_key is None else safe_key, block)


def _run_test_phase(algorithm: TestTimeAlgorithm, task: CMDP, n_episodes: int, horizon: int,
                    seed: int, optimal_value: float | None, safe_key: Hashable,
                    block: int) -> RunRecord:
    """The body of :func:`run_test_phase` (BLAS limited by the caller)."""
    if not isinstance(task, CMDP):
        raise tabular.InvalidCMDPError("task", "a tabular.CMDP")
    if not task.single_constraint and not algorithm.multi_constraint:
        raise tabular.InvalidCMDPError(
            "task", f"a task with one constraint ({algorithm.name} handles one); got "
                    f"K = {task.n_constraints} (safe-pce-certified handles K >= 1)")
    for name, value in (("n_episodes", n_episodes), ("horizon", horizon), ("block", block)):
        positive_int(name, value)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer; got {seed!r}")
    start = time.perf_counter()
    if optimal_value is None:
        optimal_value = tabular.solve(task, backend="auto").reward_value
    simulator_seed, algorithm_seed = np.random.SeedSequence(int(seed)).spawn(2)
    algorithm.reset(n_episodes, algorithm_seed)
    reward_value = np.empty(n_episodes)
    cost_value = np.empty(n_episodes if task.single_constraint else (n_episodes,
                                                                      task.n_constraints))
    safe_only = np.zeros(n_episodes, dtype=bool)
    exact: dict[Hashable, tuple[float, np.ndarray]] = {}
    k = 0
    while k < n_episodes:
        deployment = algorithm.deployment()
        size = int(min(deployment.episodes, n_episodes - k, block))
        if size < 1:
            raise RuntimeError(f"{algorithm.name} proposed a block of {deployment.episodes}")
        mixture = Mixture(np.stack(deployment.policies), deployment.weights)
        if algorithm.needs_trajectories:
            batch = tabular.simulate_trajectories(task, mixture, size, horizon,
                                                  seed=simulator_seed, first_episode=k)
            reward_returns, cost_returns = batch.discounted_returns()
            used = int(algorithm.observe(reward_returns, cost_returns, trajectories=batch))
        else:
            simulated = tabular.simulate(task, mixture, size, horizon, seed=simulator_seed,
                                         first_episode=k)
            used = int(algorithm.observe(simulated.reward_return, simulated.cost_return))
        if not 1 <= used <= size:
            raise RuntimeError(f"{algorithm.name} consumed {used} of {size} episodes")
        for key, policy in zip(deployment.keys, deployment.policies, strict=True):
            if key not in exact:
                values = tabular.evaluate(task, policy)
                exact[key] = (values.reward_value, np.atleast_1d(values.cost_value))
        # mixture values are linear in the weights (Def. 2.3)
        reward_value[k:k + used] = deployment.weights @ np.array(
            [exact[key][0] for key in deployment.keys])
        mixed_cost = deployment.weights @ np.array([exact[key][1] for key in deployment.keys])
        cost_value[k:k + used] = mixed_cost[0] if task.single_constraint else mixed_cost
        safe_only[k:k + used] = all(key == safe_key for key, w in zip(
            deployment.keys, deployment.weights, strict=True) if w > 0)
        k += used
    return RunRecord(
        algorithm=algorithm.name, preset=algorithm.preset, optimal_value=float(optimal_value),
        budget=float(task.budget) if task.single_constraint else [float(b) for b in task.budgets],
        reward_value=reward_value, cost_value=cost_value,
        safe_only=safe_only, horizon=int(horizon), seed=int(seed),
        wall_seconds=time.perf_counter() - start, log=algorithm.log())
