"""Hypothesis strategies for finite CMDPs, policies and task families (``safepce[testing]``).

Every strategy draws from small grids of round numbers (probabilities in quarters, rewards in
quarters, costs in {0, 0.5, 1, 2}) so that hypothesis shrinks to small, readable
counterexamples, and carries its promise in its name and arguments:

* :func:`cmdps` with ``slater_margin=xi``: the task's budget exceeds its least achievable
  discounted cost by at least ``xi`` (task units), certified by the occupancy LP
  (:func:`safepce.tabular.minimum_cost`), not assumed; ``n_constraints=K`` draws K cost
  constraints that one policy meets together with slack at least ``xi``.
* :func:`task_families` with ``slater_margin=xi``: every member shares action 0 at cost 0, so
  the policy that always plays it (``family.slater_policy``) has slack exactly ``budget >= xi``
  on every member (Assumption 3.3); ``family.distances`` holds the exact pairwise task distances
  (paper units) and ``family.covering_number(radius)`` the exact covering number of the uniform
  distribution over the members (the least number of radius-balls around members that hold them
  all, by enumeration).
* :func:`policies`, :func:`mixtures`: row-stochastic policies and episode-level mixtures
  (Def. 2.3 of Ni & Kamgarpour 2026, arXiv:2601.21845) of a given task's shape.
* :func:`runnable_families`, :func:`gridworld_tasks`: the ready families of the toolkit.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st

from . import families
from .cmdp import CMDP
from .distance import distance
from .distributions import FiniteUniform
from .errors import InputError
from .evaluate import evaluate
from .families import gridworld
from .policy import Mixture
from .solve import minimum_cost, solve

REWARDS = (0.0, 0.25, 0.5, 0.75, 1.0)
COSTS = (0.0, 0.5, 1.0, 2.0)
GAMMAS = (0.5, 0.6, 0.7, 0.8, 0.9)
EXTRA_BUDGET = (0.0, 0.25, 0.5, 1.0)


def _range(value, name: str) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, int) else value
    if not 1 <= low <= high:
        raise InputError(f"{name}: expected an int >= 1 or a (min, max) range; got {value!r}")
    return int(low), int(high)


@st.composite
def distributions(draw, size: int) -> np.ndarray:
    """A probability vector of ``size`` entries in quarters of its total (at least one > 0)."""
    weights = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
    weights[draw(st.integers(0, size - 1))] += 1
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum()


@st.composite
def _kernel(draw, n_states: int, n_actions: int) -> np.ndarray:
    return np.stack([np.stack([draw(distributions(n_states)) for _ in range(n_actions)])
                     for _ in range(n_states)])


def _gammas(gamma) -> st.SearchStrategy:
    if isinstance(gamma, float):
        return st.just(gamma)
    low, high = gamma
    return st.sampled_from([g for g in GAMMAS if low <= g <= high] or [low])


@st.composite
def cmdps(draw, n_states=(1, 4), n_actions=(2, 3), gamma=(0.5, 0.9),
          slater_margin: float | None = None, n_constraints: int = 1) -> CMDP:
    """A valid :class:`safepce.tabular.CMDP` (cost form) with ``n_constraints`` cost constraints
    whose budgets are met with slack at least ``slater_margin`` (task units) by one policy,
    certified (with no margin: budgets that policy meets). One constraint: the budget is the
    least achievable cost (the occupancy LP) plus the margin plus a drawn extra. K constraints:
    each budget is that of the policy least in the summed cost (the LP, its values exact) plus
    the margin plus a drawn extra, so that one policy meets all K at once (K per-constraint
    minima need not be met by any single policy). ``n_constraints = 1`` gives an (S, A) cost."""
    if isinstance(n_constraints, bool) or not isinstance(n_constraints, int) or \
            n_constraints < 1:
        raise InputError(f"n_constraints: expected an int >= 1; got {n_constraints!r}")
    S = draw(st.integers(*_range(n_states, "n_states")))
    A = draw(st.integers(*_range(n_actions, "n_actions")))
    g = draw(_gammas(gamma))
    P = draw(_kernel(S, A))
    r = np.array(draw(st.lists(st.sampled_from(REWARDS), min_size=S * A, max_size=S * A)))
    K = n_constraints
    cost = np.array(draw(st.lists(st.sampled_from(COSTS), min_size=S * A * K,
                                  max_size=S * A * K)))
    rho = draw(distributions(S))
    if K == 1:
        probe = CMDP(P, r.reshape(S, A), cost.reshape(S, A), 0.0, rho, g)
        least = float(np.atleast_1d(minimum_cost(probe))[0])
        budget = least + (slater_margin or 0.0) + draw(st.sampled_from(EXTRA_BUDGET))
        return CMDP(P, r.reshape(S, A), cost.reshape(S, A), budget, rho, g)
    cost = cost.reshape(S, A, K)
    total = cost.sum(axis=-1)
    # the policy least in the summed cost: the LP with reward max - total, one loose constraint
    probe = CMDP(P, total.max() - total, total, total.max() / (1 - g) + 1.0, rho, g)
    policy = solve(probe).policy
    values = np.atleast_1d(evaluate(CMDP(P, r.reshape(S, A), cost, np.zeros(K), rho, g),
                                    policy).cost_value)
    extra = np.array([draw(st.sampled_from(EXTRA_BUDGET)) for _ in range(K)])
    return CMDP(P, r.reshape(S, A), cost, values + (slater_margin or 0.0) + extra, rho, g)


@st.composite
def policies(draw, task: CMDP) -> np.ndarray:
    """A stochastic policy (S, A) for ``task``, probabilities in quarters."""
    return np.stack([draw(distributions(task.n_actions)) for _ in range(task.n_states)])


@st.composite
def mixtures(draw, task: CMDP, max_components: int = 3) -> Mixture:
    """An episode-level mixture of 1..``max_components`` policies of ``task``."""
    k = draw(st.integers(1, max_components))
    return Mixture.of([draw(policies(task)) for _ in range(k)], draw(distributions(k)))


class SlaterFamily(FiniteUniform):
    """A finite family with a simultaneous Slater policy (see :func:`task_families`)."""

    def __init__(self, tasks, slater_policy: np.ndarray, slater_margin: float):
        super().__init__(tasks)
        self.slater_policy = slater_policy
        self.slater_margin = float(slater_margin)
        n = len(self.tasks)
        self.distances = np.zeros((n, n))
        for i, j in itertools.combinations(range(n), 2):
            self.distances[i, j] = self.distances[j, i] = distance(self.tasks[i], self.tasks[j])

    def covering_number(self, radius: float) -> int:
        """Least number of members whose radius-balls hold every member (exact enumeration)."""
        n = len(self.tasks)
        near = self.distances <= radius
        for size in range(1, n + 1):
            for centres in itertools.combinations(range(n), size):
                if near[list(centres)].any(axis=0).all():
                    return size
        return n


@st.composite
def task_families(draw, n_tasks=(2, 4), n_states=(1, 3), n_actions=(2, 3), gamma=(0.5, 0.8),
                  slater_margin: float = 0.5) -> SlaterFamily:
    """A finite family (uniform D over 2..4 members) sharing S, A, gamma, rho and the budget,
    whose members differ in P, reward and cost, with action 0 free in every member: always
    playing it has slack ``budget >= slater_margin`` (task units) on every member."""
    n = draw(st.integers(*_range(n_tasks, "n_tasks")))
    S = draw(st.integers(*_range(n_states, "n_states")))
    low, high = _range(n_actions, "n_actions")
    A = draw(st.integers(max(2, low), max(2, high)))     # action 0 is the free one
    g = draw(_gammas(gamma))
    rho = draw(distributions(S))
    budget = slater_margin + draw(st.sampled_from(EXTRA_BUDGET))
    tasks = []
    for _ in range(n):
        P = draw(_kernel(S, A))
        r = np.array(draw(st.lists(st.sampled_from(REWARDS), min_size=S * A,
                                   max_size=S * A))).reshape(S, A)
        cost = np.array(draw(st.lists(st.sampled_from(COSTS), min_size=S * A,
                                      max_size=S * A))).reshape(S, A)
        cost[:, 0] = 0.0
        r[:, 0] = 0.0
        tasks.append(CMDP(P, r, cost, budget, rho, g))
    safe = np.zeros((S, A))
    safe[:, 0] = 1.0
    return SlaterFamily(tasks, safe, budget)


def runnable_families(seeds=(0, 4)) -> st.SearchStrategy:
    """:func:`safepce.tabular.distributions.runnable_family` for a seed in ``seeds`` (gamma 0.5, L =
    6,
    where Safe-PCE's theory constants act within ~10^4 episodes)."""
    return st.integers(*seeds).map(lambda seed: families.make("runnable", seed=seed))


def gridworld_tasks(noise=(0.1, 0.4)) -> st.SearchStrategy:
    """The paper's gridworld at a noise in ``noise`` (two decimals), cost form, budget 1.5."""
    low, high = noise
    return st.integers(round(low * 100), round(high * 100)).map(lambda k: gridworld(k / 100))
