"""What the test-time baselines (Safe Meta-RL, LB-SGD, DOPE, DOPE+) share.

Units. A baseline works either in the task's own (*raw*) units, as the authors ran Safe Meta-RL
and LB-SGD, or in *scaled cost form*: reward ``r / r_max`` in [0, 1], cost ``k / k_max`` in
[0, 1], budget ``b / k_max``, where r_max and k_max are the largest reward and cost of the family
(read off the training tasks); the preset's ``units`` says which. Scaling keeps feasibility
(``V_k <= b``) and the ranking of policies unchanged but changes what a step size or a
regulariser means; it is not the utility conversion of Section 2 of the paper, which stays in
:class:`safepce.tabular.UtilityForm`. The harness records exact values in task units.

What a baseline may know. Like Safe-PCE, a baseline sees the test task only through trajectories.
From training it receives pi_s and the training (cover) tasks, i.e. the family's static structure:
S, A, gamma, the budget and the scales above (DOPE/DOPE+ also take rho, r and the cost from them,
see :mod:`safepce.theory.algorithms.dope`), and the task pi_s was computed on.

Start policies (:class:`TrajectoryLearner`). Exponential tilting (Safe Meta-RL) and softmax
gradients (LB-SGD) cannot move a deterministic policy, and pi_s (an LP vertex) is deterministic
in all but at most one state. A learner starts from pi_s itself (the authors' Safe Meta-RL: it
then only moves where pi_s randomises), from the entropy-regularised constrained optimum of pi_s's
task (the authors' LB-SGD, :func:`safepce.tabular.solve_soft`), or from the smoothed
``pi_0 = (1 - eta) pi_s + eta uniform`` with the largest eta on a grid of step 0.01 whose cost on
every training task stays at most ``b - margin_fraction * (b - max_i V_k(pi_s; M_i))``: half of
pi_s's worst slack on the cover is kept in reserve (:func:`high_entropy_safe_start`; eta = 0.04
on the experiment's cover).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numba
import numpy as np

from safepce import tabular
from safepce.tabular import CMDP
from safepce.tabular.errors import InputError, positive_int, positive_number

from ..harness import TestTimeAlgorithm


class BaselineInputError(InputError):
    """A baseline setting is out of range (names the field and the expected range)."""


def positive(name: str, value, integer: bool = False) -> None:
    """Raise :class:`BaselineInputError` unless ``value`` is a positive (integer) number."""
    (positive_int if integer else positive_number)(name, value, BaselineInputError)


@dataclass(frozen=True)
class Scales:
    """Scaled cost form of a family (see the module docstring)."""

    reward_max: float
    cost_max: float
    budget: float          # task units
    gamma: float
    n_states: int
    n_actions: int

    @classmethod
    def of(cls, tasks: list[CMDP]) -> Scales:
        if not tasks or not all(isinstance(t, CMDP) and t.single_constraint for t in tasks):
            raise BaselineInputError("tasks: expected training tasks (tabular.CMDP, one "
                                     "constraint each)")
        first = tasks[0]
        reward_max = max(float(np.max(np.abs(t.r))) for t in tasks) or 1.0
        cost_max = max(float(np.max(t.costs)) for t in tasks) or 1.0
        return cls(reward_max, cost_max, float(first.budgets[0]), float(first.gamma),
                   first.n_states, first.n_actions)

    @property
    def scaled_budget(self) -> float:
        return self.budget / self.cost_max


def high_entropy_safe_start(safe_policy: np.ndarray, tasks: list[CMDP],
                            margin_fraction: float = 0.5, step: float = 0.01
                            ) -> tuple[np.ndarray, float]:
    """(pi_0, eta): the most uniform mixture ``(1 - eta) pi_s + eta uniform`` (eta on a grid of
    ``step``) whose exact cost on every training task is at most
    ``b - margin_fraction (b - max_i V_k(pi_s; M_i))``. Task units; eta = 0 if pi_s has no slack.
    """
    if not 0 <= margin_fraction <= 1:
        raise BaselineInputError(f"margin_fraction: expected a number in [0, 1]; "
                                 f"got {margin_fraction!r}")
    uniform = np.full_like(safe_policy, 1.0 / safe_policy.shape[1])
    budget = float(tasks[0].budgets[0])

    def worst_cost(eta: float) -> float:
        policy = (1 - eta) * safe_policy + eta * uniform
        return max(float(tabular.evaluate(t, policy).cost_value) for t in tasks)

    limit = budget - margin_fraction * (budget - worst_cost(0.0))
    eta = 0.0
    # the cost is not monotone in eta in general, so every grid point up to the answer is checked
    for candidate in np.arange(1, round(1 / step) + 1) * step:
        if worst_cost(float(candidate)) > limit:
            break
        eta = float(candidate)
    return (1 - eta) * safe_policy + eta * uniform, eta


def discounted_state_visits(batch, n_states: int) -> np.ndarray:
    """Empirical normalised discounted state occupancy ``(1 - gamma) sum_t gamma^t 1[s_t = s]``
    averaged over the episodes of a trajectory batch."""
    discount = batch.gamma ** np.arange(batch.states.shape[1])
    visits = np.zeros(n_states)
    _discounted_visits(batch.states, discount, visits)
    return visits * (1 - batch.gamma) / batch.states.shape[0]


@numba.njit(cache=True)
def _discounted_visits(states, discount, visits):
    """gamma^t added to the state of every step, in (episode, step) order (np.bincount's)."""
    for e in range(states.shape[0]):
        for t in range(states.shape[1]):
            visits[states[e, t]] += discount[t]


class FamilyBaseline(TestTimeAlgorithm):
    """A baseline that knows the family's static structure through the cover's tasks (rebuilt
    from their parameters); its constructor takes ``(training, tasks, horizon, preset)``."""

    @classmethod
    def from_training(cls, training, family, horizon: int, preset, delta: float | None = None):
        return cls(training, training.cover_tasks(family), horizon, preset=preset)


def resolve_preset(preset, preset_type: type, overrides: dict, error=BaselineInputError):
    """``preset`` (checked to be a ``preset_type``) with the constructor's keyword overrides
    applied: a variant keeps the preset's name with a ``*`` unless ``name`` is given."""
    if not isinstance(preset, preset_type):
        raise error(f"preset: expected a {preset_type.__name__}; got {preset!r}")
    if not overrides:
        return preset
    unknown = sorted(set(overrides) - {f.name for f in fields(preset)})
    if unknown:
        raise error(f"{unknown[0]}: not a field of {type(preset).__name__}; expected one of "
                    f"{[f.name for f in fields(preset)]}")
    return replace(preset, name=overrides.pop("name", preset.name + "*"), **overrides)


#: the start policies a trajectory learner can take (see :class:`TrajectoryLearner`)
STARTS = ("smoothed", "pi_s", "soft")


def safe_task_of(training, family) -> CMDP:
    """The task pi_s was computed on: the designated safe task when the training phase used
    one (the gridworld's noise-0.4 task), else the cover task where pi_s's cost is highest."""
    described = training.settings.get("safe_oracle", {})
    if described.get("oracle") == "designated":
        return family.build(np.asarray(described["parameter"], dtype=np.float64))
    return family.build(training.cover_parameters[int(np.argmax(training.safe_cost_values))])


class TrajectoryLearner(FamilyBaseline):
    """What Safe Meta-RL and LB-SGD share: trajectories in, the family's units (scaled cost form
    or raw task units), and a start policy:

    * ``"smoothed"``: the high-entropy safe start of :func:`high_entropy_safe_start`;
    * ``"pi_s"``: pi_s itself, as the authors ran Safe Meta-RL;
    * ``"soft"``: the entropy-regularised constrained optimum (:func:`safepce.tabular.solve_soft`)
    of the
      task pi_s was computed on, at ``start_temperature``, as the authors ran LB-SGD.

    ``reset`` zeroes the episode and iteration counters and the event log."""

    needs_trajectories = True

    @classmethod
    def from_training(cls, training, family, horizon: int, preset, delta: float | None = None):
        start_task = safe_task_of(training, family) if preset.start == "soft" else None
        return cls(training, training.cover_tasks(family), horizon, preset=preset,
                   start_task=start_task)

    def __init__(self, training, tasks: list[CMDP], horizon: int, preset,
                 start_task: CMDP | None = None):
        positive("horizon", horizon, integer=True)
        if preset.start not in STARTS:
            raise BaselineInputError(f"start: expected one of {STARTS}; got {preset.start!r}")
        if preset.units not in ("scaled", "raw"):
            raise BaselineInputError(f"units: expected 'scaled' or 'raw'; got {preset.units!r}")
        self.preset_object = preset
        self.preset = preset.name
        self.scales = Scales.of(tasks)
        self.horizon = int(horizon)
        # the learner's units: scaled cost form, or the task's own (raw) units
        raw = preset.units == "raw"
        self.reward_unit = 1.0 if raw else self.scales.reward_max
        self.cost_unit = 1.0 if raw else self.scales.cost_max
        self.budget = self.scales.budget / self.cost_unit
        self.start_eta = 0.0
        if preset.start == "smoothed":
            self.start_policy, self.start_eta = high_entropy_safe_start(
                training.safe_policy, tasks, preset.margin_fraction)
        elif preset.start == "pi_s":
            self.start_policy = np.array(training.safe_policy, dtype=np.float64)
        else:
            positive("start_temperature", preset.start_temperature)
            if start_task is None:      # the cover task where pi_s is costliest
                start_task = tasks[int(np.argmax(training.safe_cost_values))]
            self.start_policy = tabular.solve_soft(start_task, preset.start_temperature).policy

    def reset(self, n_episodes: int, seed=None) -> None:
        self.n_episodes = int(n_episodes)
        self.episode = 0
        self.iteration = 0
        self.policy = self.start_policy.copy()
        self.events: list[dict] = []

    def start_log(self) -> dict:
        """The start and units of the run, for :meth:`log`."""
        p = self.preset_object
        return {"start": p.start, "start_eta": self.start_eta,
                "start_temperature": p.start_temperature if p.start == "soft" else None,
                "units": p.units}
