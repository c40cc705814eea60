"""Task distributions D over a family of CMDPs indexed by parameters (Section 2 of the paper).

A distribution samples parameter vectors theta (shape (n, d)) from a seed and builds the CMDP of a
parameter. Where the task distance of the family is exactly ``d(M_theta, M_theta') =
distance_scale * |theta - theta'|`` (1-D families whose kernel is affine in theta, such as the
gridworld), ``distance_scale`` says so, and covers can be computed on sorted parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import ndtr

from .cmdp import CMDP, InvalidCMDPError
from .distance import distance
from .errors import InputError
from .families import (
    GRID_SIZE,
    gridworld,
    gridworld_energy,
    gridworld_kernel,
    gridworld_slip_wind,
    random_sparse_cmdp,
    sparse_gridworld,
)
from .families import PAPER_TEST_TASKS as PAPER_TEST_TASKS  # re-exported


class InvalidDistributionError(InputError):
    """A distribution's settings are out of range, or it yields invalid tasks."""


class TaskDistribution(ABC):
    """A distribution over tasks of one family (all tasks share S, A, K and gamma)."""

    #: names of the parameter coordinates, e.g. ("noise",)
    parameter_names: tuple[str, ...] = ("theta",)
    #: d(M_theta, M_theta') = distance_scale * |theta - theta'| exactly (paper units), or None;
    #: for d >= 2 parameters an upper bound, ``d <= distance_scale * max_k |theta_k - theta'_k|``
    #: (see :func:`affine_distance_scale`)
    distance_scale: float | None = None

    @property
    def parameter_dim(self) -> int:
        return len(self.parameter_names)

    @abstractmethod
    def sample(self, n: int, seed) -> np.ndarray:
        """``n`` parameters, shape (n, d), from a seed, SeedSequence or Generator."""

    @abstractmethod
    def build(self, theta) -> CMDP:
        """The task of one parameter vector."""

    def build_many(self, thetas) -> list[CMDP]:
        """The tasks of many parameters (subclasses vectorise where it pays)."""
        return [self.build(theta) for theta in np.asarray(thetas, dtype=np.float64)]

    def cdf(self, x) -> np.ndarray:
        """CDF of a 1-D parameter, where known in closed form."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form CDF")

    def figure1_policies(self) -> dict | None:
        """Policies for the paper's Figure 1 drawing (title -> (S, A) policy), or None when the
        family has no such figure (every family but the 7 x 7 gridworlds)."""
        return None

    def box_mass(self, lower, upper) -> np.ndarray:
        """D's mass of each box ``[lower, upper)`` (arrays (n, d)), where known in closed form
        (1-D: from :meth:`cdf`). The certified Safe-PCE's prior; any prior fixed before a run
        keeps its guarantee, so a family without it gets a uniform one."""
        if self.parameter_dim != 1:
            raise NotImplementedError(f"{type(self).__name__} has no closed-form box mass")
        lower, upper = (np.asarray(v, dtype=np.float64)[..., 0] for v in (lower, upper))
        return np.asarray(self.cdf(upper), dtype=np.float64) - np.asarray(
            self.cdf(lower), dtype=np.float64)

    #: set by :func:`safepce.tabular.families.make`: the registered name and parameters
    family_spec: dict | None = None
    #: declared by families (d <= 3 parameters on a box ``[low, high]``) whose kernel is affine
    #: in the parameter and whose reward, cost, budget, rho and gamma do not depend on it (what
    #: the certified Safe-PCE's proof covers; it verifies the declaration on a lattice of the
    #: box before it runs)
    kernel_affine: bool = False

    def to_dict(self) -> dict:
        """A JSON description from which :func:`distribution_from_dict` rebuilds it (families
        made through :func:`safepce.tabular.families.make` describe themselves)."""
        if self.family_spec is None:
            raise NotImplementedError(f"{type(self).__name__} cannot be described in JSON")
        return dict(self.family_spec)

    def check(self, seed=0) -> CMDP:
        """Sample and build one task, turning any invalid task into a clear error."""
        theta = self.sample(1, seed)
        if theta.shape != (1, self.parameter_dim) or not np.all(np.isfinite(theta)):
            raise InvalidDistributionError(
                f"{type(self).__name__}.sample: expected finite parameters of shape "
                f"(n, {self.parameter_dim}); got {theta!r}")
        try:
            task = self.build(theta[0])
        except InvalidCMDPError as exc:
            raise InvalidDistributionError(
                f"{type(self).__name__}.build: parameter {theta[0]} gives an invalid CMDP: "
                f"{exc}") from None
        if not isinstance(task, CMDP):
            raise InvalidDistributionError(
                f"{type(self).__name__}.build: expected a tabular.CMDP; got {type(task).__name__}")
        return task


def _count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidDistributionError(f"n: expected an integer >= 0; got {n!r}")
    return int(n)


class GridworldNoise(TaskDistribution):
    """The paper's D: gridworld noise ~ Normal(mean, std) clipped to [low, high] (Section 6 says
    truncated; the authors' code clips). ``noise_model``: the authors' code's kernel ("code", the
    default) or Section 6's ("text"), :func:`safepce.tabular.gridworld_kernel`.

    Clipping puts atoms of mass Phi((low - mean)/std) and 1 - Phi((high - mean)/std) on the ends.
    The kernel is affine in the noise and only the kernel changes, so the task distance is exactly
    ``0.75 |p - p'|`` (largest TV at interior cells, where the noise domain has 4 cells).
    """

    parameter_names = ("noise",)
    distance_scale = 0.75

    #: both noise models move probability mass linearly in the noise
    kernel_affine = True

    def __init__(self, mean: float = 0.3, std: float = 0.03, low: float = 0.0,
                 high: float = 0.5, gamma: float = 0.9, budget: float = 1.5, size: int = 7,
                 noise_model: str = "code"):
        if not (0.0 <= low < high <= 1.0):
            raise InvalidDistributionError(
                f"low, high: expected 0 <= low < high <= 1; got low={low}, high={high}")
        if not std > 0:
            raise InvalidDistributionError(f"std: expected a positive number; got {std}")
        if not np.isfinite(mean):
            raise InvalidDistributionError(f"mean: expected a finite number; got {mean}")
        self.mean, self.std, self.low, self.high = float(mean), float(std), float(low), float(high)
        self.gamma, self.budget = float(gamma), float(budget)
        if int(size) != size or size < 4:
            raise InvalidDistributionError(f"size: expected an integer >= 4; got {size!r}")
        self.size = int(size)
        if noise_model not in ("code", "text") or (noise_model == "text" and size != GRID_SIZE):
            raise InvalidDistributionError(
                f"noise_model: expected 'code', or 'text' on the 7 x 7 grid; got {noise_model!r} "
                f"with size {size}")
        self.noise_model = noise_model
        self.check()

    def sample(self, n: int, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noise = np.clip(rng.normal(self.mean, self.std, _count(n)), self.low, self.high)
        return noise[:, None]

    def build(self, theta) -> CMDP:
        if self.size != GRID_SIZE:
            return sparse_gridworld(float(np.ravel(theta)[0]), self.size, gamma=self.gamma,
                                    budget=self.budget)
        return gridworld(float(np.ravel(theta)[0]), gamma=self.gamma, budget=self.budget,
                         noise_model=self.noise_model)

    def build_many(self, thetas) -> list[CMDP]:
        if self.size != GRID_SIZE:
            return [self.build(t) for t in np.asarray(thetas, dtype=np.float64).reshape(-1)]
        noise = np.asarray(thetas, dtype=np.float64).reshape(-1)
        kernels = gridworld_kernel(noise, self.noise_model)
        template = gridworld(float(noise[0]) if noise.size else self.mean, self.gamma, self.budget,
                             self.noise_model)
        return [CMDP(P, template.r, template.cost, template.budget, template.rho, template.gamma)
                for P in kernels]

    def figure1_policies(self) -> dict | None:
        """The paper's Figure 1: the optimal policies at noise 0.1 and 0.3 (7 x 7 grids)."""
        if self.size != GRID_SIZE:
            return None
        from .solve import solve

        return {f"noise {p:g}": solve(self.build([p])).policy for p in (0.1, 0.3)}

    def cdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        inside = ndtr((x - self.mean) / self.std)          # the standard normal CDF
        return np.where(x < self.low, 0.0, np.where(x >= self.high, 1.0, inside))

    def to_dict(self) -> dict:
        spec = {"family": "gridworld", "mean": self.mean, "std": self.std, "low": self.low,
                "high": self.high, "gamma": self.gamma, "budget": self.budget}
        if self.noise_model != "code":
            spec["noise_model"] = self.noise_model
        return spec if self.size == GRID_SIZE else {**spec, "size": self.size}

    def __repr__(self) -> str:
        size = "" if self.size == GRID_SIZE else f", size={self.size}"
        model = "" if self.noise_model == "code" else f", noise_model={self.noise_model!r}"
        return (f"GridworldNoise(mean={self.mean}, std={self.std}, low={self.low}, "
                f"high={self.high}, gamma={self.gamma}, budget={self.budget}{size}{model})")


class UniformInterval(TaskDistribution):
    """A parameter uniform on [low, high], each value built into a task by ``builder``.

    ``distance_scale`` may be given when the family's distance is exactly scale * |dtheta|;
    ``kernel_affine=True`` declares an affine kernel with everything else fixed (see
    :attr:`TaskDistribution.kernel_affine`).
    """

    parameter_names = ("theta",)

    def __init__(self, low: float, high: float, builder: Callable[[float], CMDP],
                 name: str = "theta", distance_scale: float | None = None,
                 kernel_affine: bool = False):
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise InvalidDistributionError(
                f"low, high: expected finite numbers with low < high; got low={low}, high={high}")
        self.low, self.high, self.builder = float(low), float(high), builder
        self.parameter_names = (name,)
        self.distance_scale = distance_scale
        self.kernel_affine = bool(kernel_affine)
        self.check()

    def sample(self, n: int, seed) -> np.ndarray:
        return np.random.default_rng(seed).uniform(self.low, self.high, _count(n))[:, None]

    def build(self, theta) -> CMDP:
        return self.builder(float(np.ravel(theta)[0]))

    def cdf(self, x) -> np.ndarray:
        return np.clip((np.asarray(x, dtype=np.float64) - self.low) / (self.high - self.low), 0, 1)


class FiniteUniform(TaskDistribution):
    """The uniform distribution over a given list of CMDPs; the parameter is the task's index."""

    parameter_names = ("index",)

    def __init__(self, tasks: Sequence[CMDP], weights: Sequence[float] | None = None):
        tasks = list(tasks)
        if not tasks:
            raise InvalidDistributionError("tasks: expected at least one CMDP")
        for i, task in enumerate(tasks):
            if not isinstance(task, CMDP):
                raise InvalidDistributionError(
                    f"tasks[{i}]: expected a tabular.CMDP; got {type(task).__name__}")
            if (task.n_states, task.n_actions, task.n_constraints, task.gamma) != (
                    tasks[0].n_states, tasks[0].n_actions, tasks[0].n_constraints, tasks[0].gamma):
                raise InvalidDistributionError(
                    f"tasks[{i}]: expected the same (S, A, K, gamma) as tasks[0]")
        self.tasks = tasks
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights is not None and (self.weights.shape != (len(tasks),) or np.any(
                self.weights < 0) or abs(self.weights.sum() - 1) > 1e-9):
            raise InvalidDistributionError(
                f"weights: expected {len(tasks)} non-negative numbers summing to 1")

    def sample(self, n: int, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        indices = rng.choice(len(self.tasks), size=_count(n), p=self.weights)
        return indices.astype(np.float64)[:, None]

    def build(self, theta) -> CMDP:
        return self.tasks[int(np.ravel(theta)[0])]


def _clipped_normal_cdf(x, mean: float, std: float, low: float, high: float) -> np.ndarray:
    """CDF of Normal(mean, std) clipped to [low, high] (atoms at both ends)."""
    x = np.asarray(x, dtype=np.float64)
    inside = ndtr((x - mean) / std)
    return np.where(x < low, 0.0, np.where(x >= high, 1.0, inside))


def affine_distance_scale(distribution: TaskDistribution) -> float:
    """For a family whose kernel is affine on the box ``[low, high]`` with nothing else varying:
    ``sum_k s_k`` with ``s_k = d(M_low, M_low + span_k e_k) / span_k`` the task distance per unit
    of coordinate k alone. Since ``P(theta) - P(theta') = sum_k (theta_k - theta'_k) B_k``, the
    triangle inequality of TV gives ``d(M_theta, M_theta') <= sum_k s_k |theta_k - theta'_k| <=
    (sum_k s_k) max_k |theta_k - theta'_k|``: an upper bound, exact along each axis."""
    low, high = (np.asarray(v, dtype=np.float64) for v in (distribution.low, distribution.high))
    base = distribution.build(low)
    total = 0.0
    for k in range(low.size):
        corner = low.copy()
        corner[k] = high[k]
        total += distance(base, distribution.build(corner), units="task") / (high[k] - low[k])
    return float(total)


class GridworldSlipWind(TaskDistribution):
    """The 7x7 gridworld with two independent noises (:func:`safepce.tabular.families.
    gridworld_slip_wind`): slip ~ Normal(slip_mean, slip_std) clipped to [0, slip_high] (the
    paper's D at the defaults) and wind ~ Normal(wind_mean, wind_std) clipped to
    [0, wind_high]. The kernel is affine in (slip, wind) and nothing else depends on them
    (``kernel_affine``); the support is the box ``[low, high]``."""

    parameter_names = ("slip", "wind")
    kernel_affine = True

    def __init__(self, slip_mean: float = 0.25, slip_std: float = 0.03, slip_high: float = 0.45,
                 wind_mean: float = 0.04, wind_std: float = 0.01, wind_high: float = 0.1,
                 gamma: float = 0.9, budget: float = 1.5):
        for name, value in (("slip_std", slip_std), ("wind_std", wind_std)):
            if not value > 0:
                raise InvalidDistributionError(f"{name}: expected a positive number; got {value}")
        if not (0 < slip_high and 0 < wind_high and slip_high + wind_high <= 1):
            raise InvalidDistributionError(
                f"slip_high, wind_high: expected positive numbers with slip_high + wind_high <= 1 "
                f"(a kernel on the whole box); got {slip_high}, {wind_high}")
        self.means = np.array([slip_mean, wind_mean], dtype=np.float64)
        self.stds = np.array([slip_std, wind_std], dtype=np.float64)
        self.low = np.zeros(2)
        self.high = np.array([slip_high, wind_high], dtype=np.float64)
        self.gamma, self.budget = float(gamma), float(budget)
        self.check()
        self.distance_scale = affine_distance_scale(self)

    def sample(self, n: int, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.clip(rng.normal(self.means, self.stds, (_count(n), 2)), self.low, self.high)

    def build(self, theta) -> CMDP:
        slip, wind = np.asarray(theta, dtype=np.float64).reshape(2)
        return gridworld_slip_wind(slip, wind, gamma=self.gamma, budget=self.budget)

    def box_mass(self, lower, upper) -> np.ndarray:
        mass = 1.0
        for i in range(2):
            args = self.means[i], self.stds[i], self.low[i], self.high[i]
            mass = mass * (_clipped_normal_cdf(np.asarray(upper)[..., i], *args)
                           - _clipped_normal_cdf(np.asarray(lower)[..., i], *args))
        return mass


class RandomSparsePlane(TaskDistribution):
    """Random sparse tasks with a 2-D parameter: ``P(theta) = P_a + theta_1 (P_b - P_a) +
    theta_2 (P_c - P_a)`` with P_a, P_b, P_c three :func:`safepce.tabular.families.
    random_sparse_cmdp` kernels and theta uniform on ``[0, high]^2`` (``high <= 1/2``, so every
    point is a kernel); reward and cost of the first, rho uniform, the budget the uniform
    policy's cost on P_a. Affine in theta with everything else fixed (``kernel_affine``)."""

    parameter_names = ("theta_1", "theta_2")
    kernel_affine = True

    def __init__(self, n_states: int = 20, seed: int = 0, n_actions: int = 4,
                 n_successors: int = 5, gamma: float = 0.9, high: float = 0.5):
        if not 0 < high <= 0.5:
            raise InvalidDistributionError(f"high: expected a number in (0, 0.5]; got {high}")
        kernels = [random_sparse_cmdp(n_states, np.random.SeedSequence([seed, k]), n_actions,
                                      n_successors, gamma, budget=0.0) for k in range(3)]
        first = random_sparse_cmdp(n_states, np.random.SeedSequence([seed, 0]), n_actions,
                                   n_successors, gamma)
        self.template = first
        self.kernels = [k.dense_P for k in kernels]
        self.low, self.high = np.zeros(2), np.full(2, float(high))
        self.check()
        self.distance_scale = affine_distance_scale(self)

    def sample(self, n: int, seed) -> np.ndarray:
        return np.random.default_rng(seed).uniform(self.low, self.high, (_count(n), 2))

    def build(self, theta) -> CMDP:
        t1, t2 = np.asarray(theta, dtype=np.float64).reshape(2)
        if not (0 <= t1 <= self.high[0] and 0 <= t2 <= self.high[1]):
            raise InvalidCMDPError("theta", f"a point of [0, {self.high[0]:g}]^2",
                                   detail=f"got {(t1, t2)!r}")
        a, b, c = self.kernels
        T = self.template
        return CMDP(a + t1 * (b - a) + t2 * (c - a), T.r, T.cost, T.budget, T.rho, T.gamma)

    def box_mass(self, lower, upper) -> np.ndarray:
        span = np.clip(np.asarray(upper), self.low, self.high) - np.clip(
            np.asarray(lower), self.low, self.high)
        return np.prod(np.maximum(span, 0.0) / (self.high - self.low), axis=-1)


class GridworldEnergy(GridworldNoise):
    """The paper's D (gridworld noise) over the two-constraint gridworld
    :func:`safepce.tabular.families.gridworld_energy`: hazard cost (budget ``budget``) and
    energy per move (budget ``energy_budget``, which binds at every noise in [0, 0.4])."""

    def __init__(self, mean: float = 0.3, std: float = 0.03, low: float = 0.0,
                 high: float = 0.5, gamma: float = 0.9, budget: float = 1.5,
                 energy_budget: float = 3.0):
        self.energy_budget = float(energy_budget)
        super().__init__(mean, std, low, high, gamma, budget)

    def build(self, theta) -> CMDP:
        return gridworld_energy(float(np.ravel(theta)[0]), gamma=self.gamma, budget=self.budget,
                                energy_budget=self.energy_budget)

    def build_many(self, thetas) -> list[CMDP]:
        return [self.build(t) for t in np.asarray(thetas, dtype=np.float64).reshape(-1)]

    def to_dict(self) -> dict:
        if self.family_spec is not None:
            return dict(self.family_spec)
        raise NotImplementedError("GridworldEnergy: build it with make('gridworld-energy')")

    def __repr__(self) -> str:
        return (f"GridworldEnergy(mean={self.mean}, std={self.std}, low={self.low}, "
                f"high={self.high}, gamma={self.gamma}, budget={self.budget}, "
                f"energy_budget={self.energy_budget})")


def distribution_from_dict(spec: dict) -> TaskDistribution:
    """Rebuild a distribution from :meth:`TaskDistribution.to_dict` (any registered family)."""
    from .registry import make

    spec = dict(spec)
    return make(spec.pop("family", None), **spec)


class InterpolatedKernels(TaskDistribution):
    """Tasks whose kernel is ``P(theta) = (1 - theta) P_a + theta P_b``, theta ~ Uniform[0, 1],
    with reward, cost, budget and rho fixed: an affine 1-D family, so the task distance is
    exactly ``distance_scale |theta - theta'|`` with ``distance_scale = max_{s,a} TV(P_a, P_b)``.

    :func:`runnable_family` builds one where the paper's ``theory`` constants are usable.
    """

    kernel_affine = True

    parameter_names = ("theta",)

    def __init__(self, P_a, P_b, r, cost, budget: float, rho, gamma: float):
        self.template = CMDP(P_a, r, cost, budget, rho, gamma)
        other = CMDP(P_b, r, cost, budget, rho, gamma)
        self.P_b = other.P
        self.distance_scale = distance(self.template, other, units="task")
        self.low, self.high = 0.0, 1.0

    def sample(self, n: int, seed) -> np.ndarray:
        return np.random.default_rng(seed).uniform(0.0, 1.0, _count(n))[:, None]

    def build(self, theta) -> CMDP:
        t = float(np.ravel(theta)[0])
        if not 0.0 <= t <= 1.0:
            raise InvalidCMDPError("theta", "a number in [0, 1]", detail=f"got {t!r}")
        T = self.template
        return CMDP((1 - t) * T.P + t * self.P_b, T.r, T.cost, T.budget, T.rho, T.gamma)

    def cdf(self, x) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)


def runnable_family(seed: int = 0, n_states: int = 4, gamma: float = 0.5,
                    budget_rate: float = 0.3) -> InterpolatedKernels:
    """A small family on which Safe-PCE's ``theory`` constants act within ~10^5 episodes.

    Action 0 is safe (reward 0, cost 0), action 1 is rewarding and costly (reward and cost
    uniform on [0.5, 1]); per-step budget ``budget_rate = b (1 - gamma)``. The all-safe policy then
    has normalised utility ``budget_rate / max|c| / (1 - gamma)`` on every task (Assumption 3.3
    with a large xi), while the optimum must mix, so the constraint is active.
    """
    rng = np.random.default_rng(seed)
    P_a = rng.dirichlet(np.ones(n_states), size=(n_states, 2))
    P_b = rng.dirichlet(np.ones(n_states), size=(n_states, 2))
    r = np.zeros((n_states, 2))
    cost = np.zeros((n_states, 2))
    r[:, 1] = rng.uniform(0.5, 1.0, n_states)
    cost[:, 1] = rng.uniform(0.5, 1.0, n_states)
    rho = np.full(n_states, 1.0 / n_states)
    return InterpolatedKernels(P_a, P_b, r, cost, budget_rate / (1 - gamma), rho, gamma)


def random_sparse_family(n_states: int = 1000, seed: int = 0, n_actions: int = 4,
                         n_successors: int = 10, gamma: float = 0.9) -> InterpolatedKernels:
    """Sparse tasks at scale: ``P(theta) = (1 - theta) P_a + theta P_b`` with P_a, P_b two
    :func:`safepce.tabular.families.random_sparse_cmdp` kernels (``n_successors`` each, so up to
    twice
    that per row), their shared reward and cost from the first, rho uniform, and the budget the
    uniform policy's cost on P_a. Exact distance ``distance_scale |theta - theta'|``."""
    first = random_sparse_cmdp(n_states, np.random.SeedSequence([seed, 0]), n_actions,
                               n_successors, gamma)
    second = random_sparse_cmdp(n_states, np.random.SeedSequence([seed, 1]), n_actions,
                                n_successors, gamma, budget=first.budget)
    return InterpolatedKernels(first.P, second.P, first.r, first.cost, first.budget, first.rho,
                               gamma)


def arms_family(n_tasks: int = 4, gamma: float = 0.5, budget_rate: float = 0.6) -> FiniteUniform:
    """A finite family on which Safe-PCE's ``theory`` constants must *eliminate*: one state,
    action 0 safe (reward 0, cost 0) and one arm per task. In task j, arm j+1 is good (reward
    0.8, cost 1); every other arm k is costly (reward 1, cost 2) when j + k is odd and poor
    (reward 0.4, cost 1) when it is even. Per-step budget ``budget_rate = b (1-gamma)`` < 1, so
    each task's optimum plays its good arm with probability ``budget_rate`` (the constraint
    binds), and every task has the same V*, so optimism tries candidates in index order.

    On task j the candidate of task i != j mispredicts: on a costly arm its cost doubles (it is
    infeasible if deployed alone) while its reward *exceeds* V*; on a poor arm its reward
    halves. Both sides of the elimination test (Ineq. 5) are exercised, and PCE's regret meets
    V_r(pi) > V* (where Eq. 1's positive part matters). Every task has the same normalising
    scales, pairwise distances of at least 0.7 (paper units), and the all-safe policy has the
    same Slater margin on every task (Assumption 3.3).
    """
    n_tasks = int(n_tasks)
    if n_tasks < 1 or not 0 < budget_rate < 1:
        raise InvalidDistributionError(
            f"n_tasks, budget_rate: expected n_tasks >= 1 and budget_rate in (0, 1); got "
            f"{n_tasks}, {budget_rate}")
    arms = n_tasks + 1
    P = np.ones((1, arms, 1))
    tasks = []
    for j in range(n_tasks):
        r = np.zeros((1, arms))
        cost = np.zeros((1, arms))
        for k in range(1, arms):
            if k == j + 1:
                r[0, k], cost[0, k] = 0.8, 1.0
            elif (j + k) % 2 == 1:
                r[0, k], cost[0, k] = 1.0, 2.0
            else:
                r[0, k], cost[0, k] = 0.4, 1.0
        tasks.append(CMDP(P, r, cost, budget_rate / (1 - gamma), np.ones(1), gamma))
    return FiniteUniform(tasks)


def slack_pair_family(gamma: float = 0.5, budget_rate: float = 0.6) -> FiniteUniform:
    """Two one-state tasks where Theorem 4.2's explicit bound is not vacuous at simulable K:
    action 0 safe (reward 0, cost 0), arms 1 and 2 both cost 0.5 per step (< ``budget_rate``,
    so every optimum has slack and Safe-PCE's stages stay short); arm 1 pays 0.8 and arm 2 0.4
    in task 0, the reverse in task 1. pi_s's normalised margin is 1/(1-gamma) (the largest a
    task allows), which shrinks App. E's square-root terms by the same factor; the candidate
    of the other task is eliminated by the reward side of Ineq. 5."""
    P = np.ones((1, 3, 1))
    cost = np.array([[0.0, 0.5, 0.5]])
    tasks = [CMDP(P, np.array([[0.0, a, b]]), cost, budget_rate / (1 - gamma), np.ones(1), gamma)
             for a, b in ((0.8, 0.4), (0.4, 0.8))]
    return FiniteUniform(tasks)
