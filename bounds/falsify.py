"""The falsification engine: every quantitative claim written once as a ratio that must stay
<= 1, and a search that tries to push it above 1.

A :class:`RatioClaim` is ``ratio(instance) = lhs / rhs`` over an :class:`InstanceSpace` of small
instances (here: pairs of tasks in the paper's units with a policy), with a ``premise`` (where
the statement applies) and a second, independent route ``exact_ratio`` (exact rational
arithmetic) that re-evaluates any instance the search finds. :func:`falsify` maximises the
ratio in three stages under a stated :class:`SearchBudget`:

1. *structured extremes*: deterministic kernels, absorbing states, rho on one state, rewards and
   utilities at the ends of their ranges, gamma near 0 and near 1, one- to three-state tasks,
   each perturbed into its partner task by a step in every ingredient of the distance;
2. *hypothesis* with ``hypothesis.target(ratio)`` over small, readable instances;
3. *a local optimiser* (``scipy.optimize.minimize``, Powell, several restarts) over a continuous
   parametrisation (logits for rewards, ``tanh`` for utilities, softmax for rho, kernels and
   policies, a logistic gamma), started from the best instances of the first two stages.

The answer is a :class:`SearchResult`: the worst ratio found, where, whether the premise held
there, and the smallest refuting instance found (fewest states, then actions), re-evaluated by
the exact route. ``status`` is ``refuted`` (a statement of the paper) or ``failed`` (a statement
of this toolkit) when the exact ratio exceeds ``1 + 1e-9``; ``failed`` as well when the two
routes disagree by more than ``1e-9`` (relative): then the toolkit's own code is wrong.
``passed`` means no instance above 1 was found under the stated budget, not a proof.

Counterexamples are saved as ``counterexamples/NAME.npz`` (the instance's arrays) with
``NAME.json`` (a one-line description, both ratios, the exact ratio as a fraction) and replayed
by :func:`replay`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np

from safepce import tabular
from safepce.tabular.distance import corrected_simulation_constants, simulation_lemma_constant
from safepce.tabular.errors import InputError
from safepce.theory.algorithms.safe_pce import (
    mixture_weights,
    mixture_weights_recursive,
    stage_limit,
)

#: a ratio above 1 + TOLERANCE on the exact route refutes a claim
TOLERANCE = 1e-9
#: the smallest task distance at which Lemma C.3's ratio is evaluated: below it the gap is
#: within rounding of 0 and gap / (L d) loses its digits
MIN_DISTANCE = 1e-4
KINDS = ("paper-statement", "check")
#: how many of the best instances found are re-evaluated by the exact route
AGREEMENT_CHECKS = 16
SAMPLE_EVERY = 23


class FalsifyError(InputError):
    """Bad input to the engine (a budget, a claim name, a counterexample file)."""


@dataclass(frozen=True)
class SearchBudget:
    """How hard :func:`falsify` tries: ``extremes`` structured instances, ``hypothesis_examples``
    hypothesis examples, then ``restarts`` local optimisations of at most
    ``evaluations_per_restart`` ratio evaluations each."""

    name: str
    extremes: int
    hypothesis_examples: int
    restarts: int
    evaluations_per_restart: int

    def __post_init__(self):
        for item in fields(self)[1:]:
            value = getattr(self, item.name)
            if not isinstance(value, int) or value < 0:
                raise FalsifyError(f"{item.name}: expected an integer >= 0; got {value!r}")

    @property
    def evaluations(self) -> int:
        return (self.extremes + self.hypothesis_examples
                + self.restarts * self.evaluations_per_restart)

    def describe(self) -> str:
        return (f"{self.name}: {self.extremes} extremes + {self.hypothesis_examples} hypothesis "
                f"examples + {self.restarts} x {self.evaluations_per_restart} Powell evaluations")


QUICK = SearchBudget("quick", extremes=600, hypothesis_examples=300, restarts=4,
                     evaluations_per_restart=400)
FULL = SearchBudget("full", extremes=6000, hypothesis_examples=3000, restarts=16,
                    evaluations_per_restart=2000)


def logit(p, floor: float = 1e-9) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [floor, 1 - floor]: the optimisers' coordinates."""
    p = np.clip(np.asarray(p, dtype=np.float64), floor, 1 - floor)
    return np.log(p) - np.log1p(-p)


def sigmoid(z) -> np.ndarray:
    """The inverse of :func:`logit`."""
    return 1 / (1 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -700, 700)))


# --- instances: a pair of tasks in the paper's units and one policy ------------------------------


@dataclass(frozen=True, eq=False)
class TaskPair:
    """Two tasks M1, M2 in the paper's units (Section 2: r in [0, 1], utility c in [-1, 1],
    feasible iff V_c >= 0) sharing S, A and gamma, and one stationary policy.

    Arrays: ``P1, P2`` (S, A, S); ``r1, r2, c1, c2`` (S, A); ``rho1, rho2`` (S,); ``policy``
    (S, A). A budget is part of the utility (``c = b (1 - gamma) - cost``), so two tasks that
    differ only in their budget differ by a constant in ``c``.
    """

    gamma: float
    P1: np.ndarray
    P2: np.ndarray
    r1: np.ndarray
    r2: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    rho1: np.ndarray
    rho2: np.ndarray
    policy: np.ndarray

    ARRAYS = ("P1", "P2", "r1", "r2", "c1", "c2", "rho1", "rho2", "policy")

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1.shape

    def size(self) -> tuple[int, int]:
        """Shrinking order: fewer states, then fewer actions."""
        return self.r1.shape

    @cached_property
    def tasks(self) -> tuple[tabular.CMDP, tabular.CMDP]:
        """Both tasks as the toolkit's cost-form CMDPs (built once): cost 1 - c, budget
        1/(1 - gamma), so that the utility b (1 - gamma) - cost is c and V_c = b - V_cost."""
        budget = 1.0 / (1.0 - self.gamma)
        return tuple(tabular.CMDP(P, r, 1.0 - c, budget, rho, self.gamma)
                     for P, r, c, rho in ((self.P1, self.r1, self.c1, self.rho1),
                                          (self.P2, self.r2, self.c2, self.rho2)))

    def describe(self) -> str:
        S, A = self.shape
        return (f"S = {S}, A = {A}, gamma = {self.gamma:.6g}; " + "; ".join(
            f"{name} = {np.array2string(getattr(self, name), precision=4, separator=',')}"
            .replace("\n", "") for name in self.ARRAYS))

    def save(self, path: Path) -> None:
        np.savez(path, gamma=np.float64(self.gamma),
                 **{name: getattr(self, name) for name in self.ARRAYS})

    @classmethod
    def load(cls, path: Path) -> TaskPair:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(float(data["gamma"]), *(np.array(data[name], dtype=np.float64)
                                                   for name in cls.ARRAYS))
        except (OSError, KeyError, ValueError) as exc:
            raise FalsifyError(f"{path}: not a task-pair counterexample ({exc})") from None


def _values(P, r, c, rho, policy, gamma):
    """(V_r, V_c) under rho by a direct dense solve (float)."""
    P_pi = np.einsum("sa,sat->st", policy, P)
    system = np.eye(len(rho)) - gamma * P_pi
    V = np.linalg.solve(system, np.stack([np.sum(policy * r, 1), np.sum(policy * c, 1)], 1))
    return rho @ V


def _exact_solve(matrix: list[list[Fraction]], rhs: list[list[Fraction]]) -> list[list[Fraction]]:
    """Gaussian elimination in rational arithmetic (the matrix is I - gamma P_pi: invertible)."""
    n = len(matrix)
    rows = [list(matrix[i]) + list(rhs[i]) for i in range(n)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if rows[i][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col][col]
        rows[col] = [x / head for x in rows[col]]
        for i in range(n):
            if i != col and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [x - factor * y for x, y in zip(rows[i], rows[col], strict=True)]
    return [row[n:] for row in rows]


def exact_values(P, r, c, rho, policy, gamma) -> tuple[Fraction, Fraction]:
    """(V_r, V_c) under rho in exact rational arithmetic: every float input is taken at its
    exact binary value, so the result is the exact value of the instance as stored."""
    S, A = r.shape
    F = Fraction
    g = F(float(gamma))
    pol = [[F(float(policy[s, a])) for a in range(A)] for s in range(S)]
    matrix = [[(F(1) if s == t else F(0))
               - g * sum(pol[s][a] * F(float(P[s, a, t])) for a in range(A))
               for t in range(S)] for s in range(S)]
    rhs = [[sum(pol[s][a] * F(float(r[s, a])) for a in range(A)),
            sum(pol[s][a] * F(float(c[s, a])) for a in range(A))] for s in range(S)]
    V = _exact_solve(matrix, rhs)
    weights = [F(float(x)) for x in rho]
    return (sum(w * v[0] for w, v in zip(weights, V, strict=True)),
            sum(w * v[1] for w, v in zip(weights, V, strict=True)))


def exact_distance(pair: TaskPair) -> Fraction:
    """Feng et al.'s task distance (Section 2 of the paper) in exact rational arithmetic."""
    F = Fraction

    def sup(x, y):
        return max(abs(F(float(a)) - F(float(b))) for a, b in zip(x.ravel(), y.ravel(),
                                                                  strict=True))

    def tv(x, y):
        return sum(abs(F(float(a)) - F(float(b))) for a, b in zip(x, y, strict=True)) / 2

    S, A = pair.shape
    kernel = max(tv(pair.P1[s, a], pair.P2[s, a]) for s in range(S) for a in range(A))
    return max(sup(pair.r1, pair.r2), sup(pair.c1, pair.c2), tv(pair.rho1, pair.rho2), kernel)


@dataclass(frozen=True)
class PairGaps:
    """|V_r^{M1} - V_r^{M2}|, |V_c^{M1} - V_c^{M2}| and d(M1, M2) of one :class:`TaskPair`."""

    reward_gap: float | Fraction
    utility_gap: float | Fraction
    distance: float | Fraction


def toolkit_gaps(pair: TaskPair) -> PairGaps:
    """The gaps by the toolkit's own code: :func:`safepce.tabular.evaluate` and
    :func:`safepce.tabular.distance` on the cost-form tasks of :meth:`TaskPair.tasks`."""
    m1, m2 = pair.tasks
    e1, e2 = tabular.evaluate(m1, pair.policy), tabular.evaluate(m2, pair.policy)
    return PairGaps(abs(e1.reward_value - e2.reward_value),
                    abs(float(np.ravel(e1.cost_value)[0]) - float(np.ravel(e2.cost_value)[0])),
                    tabular.distance(m1, m2, units="task"))


def exact_gaps(pair: TaskPair) -> PairGaps:
    """The same gaps in exact rational arithmetic (:func:`exact_values`, :func:`exact_distance`)."""
    v1 = exact_values(pair.P1, pair.r1, pair.c1, pair.rho1, pair.policy, pair.gamma)
    v2 = exact_values(pair.P2, pair.r2, pair.c2, pair.rho2, pair.policy, pair.gamma)
    return PairGaps(abs(v1[0] - v2[0]), abs(v1[1] - v2[1]), exact_distance(pair))


class TaskPairSpace:
    """Small task pairs: S in [1, max_states], A in [1, max_actions]."""

    GAMMAS = (0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999)
    STEPS = (1e-3, 0.01, 0.05, 0.1, 0.25, 0.5)
    GAMMA_RANGE = (1e-3, 0.999)

    def __init__(self, max_states: int = 3, max_actions: int = 2):
        self.max_states, self.max_actions = max_states, max_actions

    @staticmethod
    def load(path: Path) -> TaskPair:
        return TaskPair.load(path)

    # structured extremes
    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[TaskPair]:
        for _ in range(n):
            yield self._extreme(rng)

    def _extreme(self, rng: np.random.Generator) -> TaskPair:
        S = int(rng.integers(1, self.max_states + 1))
        A = int(rng.integers(1, self.max_actions + 1))
        gamma = float(rng.choice(self.GAMMAS))
        step = float(rng.choice(self.STEPS))
        # M1 at corners: deterministic kernel (self-loops = absorbing states), rho on one state,
        # r in {0, 1}, c in {-1, 1}
        successors = np.where(rng.random((S, A)) < 0.5, np.arange(S)[:, None],
                              rng.integers(0, S, (S, A)))
        P1 = np.eye(S)[successors]
        rho1 = np.eye(S)[rng.integers(0, S)]
        r1 = rng.integers(0, 2, (S, A)).astype(float)
        c1 = rng.choice([-1.0, 1.0], (S, A))
        # M2: each ingredient moved by `step` towards a corner, or left alone; in half the draws
        # the moves are aligned (kernel rows and rho towards one state, every signal in one
        # direction), since aligned errors add up in a value gap
        moves = rng.random(4) < 0.7
        aligned = rng.random() < 0.5
        sink = int(rng.integers(0, S))
        kernel_targets = np.full((S, A), sink) if aligned else rng.integers(0, S, (S, A))
        rho_target = sink if aligned else int(rng.integers(0, S))
        if aligned:
            signs = [np.full((S, A), rng.choice([-1.0, 1.0])) for _ in range(2)]
        else:
            signs = [rng.choice([-1.0, 0.0, 1.0], (S, A)) for _ in range(2)]
        P2 = (1 - step) * P1 + step * np.eye(S)[kernel_targets] if moves[0] else P1.copy()
        rho2 = (1 - step) * rho1 + step * np.eye(S)[rho_target] if moves[1] else rho1.copy()
        r2 = np.clip(r1 + step * signs[0] * moves[2], 0, 1)
        c2 = np.clip(c1 + step * signs[1] * moves[3], -1, 1)
        policy = (np.eye(A)[rng.integers(0, A, S)] if rng.random() < 0.5
                  else rng.dirichlet(np.ones(A), S))
        return TaskPair(gamma, P1, P2, r1, r2, c1, c2, rho1, rho2, policy)

    # hypothesis
    def strategy(self):
        from hypothesis import strategies as st

        quarters = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])

        @st.composite
        def pairs(draw):
            S = draw(st.integers(1, self.max_states))
            A = draw(st.integers(1, self.max_actions))
            gamma = draw(st.sampled_from(self.GAMMAS))
            step = draw(st.sampled_from(self.STEPS))

            def grid(shape, values=quarters):
                return np.array(draw(st.lists(values, min_size=int(np.prod(shape)),
                                              max_size=int(np.prod(shape))))).reshape(shape)

            def simplex(shape):
                weights = grid((*shape[:-1], shape[-1])) + 1e-3
                return weights / weights.sum(-1, keepdims=True)

            P1, P2 = simplex((S, A, S)), simplex((S, A, S))
            P2 = (1 - step) * P1 + step * P2
            rho1 = simplex((S,))
            rho2 = (1 - step) * rho1 + step * simplex((S,))
            r1 = grid((S, A))
            r2 = np.clip(r1 + step * grid((S, A), st.sampled_from([-1.0, 0.0, 1.0])), 0, 1)
            c1 = 2 * grid((S, A)) - 1
            c2 = np.clip(c1 + step * grid((S, A), st.sampled_from([-1.0, 0.0, 1.0])), -1, 1)
            return TaskPair(gamma, P1, P2, r1, r2, c1, c2, rho1, rho2, simplex((S, A)))

        return pairs()

    # the optimiser's parametrisation
    def encode(self, pair: TaskPair) -> np.ndarray:
        def logs(p):
            return np.log(np.clip(p, 1e-9, None))

        low, high = self.GAMMA_RANGE
        parts = [logit(np.array([(pair.gamma - low) / (high - low)])),
                 logs(pair.P1), logs(pair.P2), logit(pair.r1), logit(pair.r2),
                 np.arctanh(np.clip(pair.c1, -1 + 1e-9, 1 - 1e-9)),
                 np.arctanh(np.clip(pair.c2, -1 + 1e-9, 1 - 1e-9)),
                 logs(pair.rho1), logs(pair.rho2), logs(pair.policy)]
        return np.clip(np.concatenate([p.ravel() for p in parts]), -20, 20)

    def decode(self, x: np.ndarray, like: TaskPair) -> TaskPair:
        S, A = like.shape
        sizes = [1, S * A * S, S * A * S, S * A, S * A, S * A, S * A, S, S, S * A]
        pieces = np.split(np.asarray(x, dtype=np.float64), np.cumsum(sizes)[:-1])

        def softmax(z, shape):
            z = z.reshape(shape)
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        low, high = self.GAMMA_RANGE
        return TaskPair(float(low + (high - low) * sigmoid(pieces[0][0])),
                        softmax(pieces[1], (S, A, S)), softmax(pieces[2], (S, A, S)),
                        sigmoid(pieces[3]).reshape(S, A), sigmoid(pieces[4]).reshape(S, A),
                        np.tanh(pieces[5]).reshape(S, A), np.tanh(pieces[6]).reshape(S, A),
                        softmax(pieces[7], (S,)), softmax(pieces[8], (S,)),
                        softmax(pieces[9], (S, A)))


# --- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioClaim:
    """A claim ``ratio(instance) <= 1`` on the instances where ``premise`` holds.

    ``ratio`` is the fast route (the toolkit's own functions), ``exact_ratio`` the independent
    one (exact rational arithmetic, returned as a Fraction); ``kind`` is ``paper-statement``
    (a ratio above 1 refutes the paper) or ``check`` (it fails the toolkit)."""

    name: str
    label: str
    statement: str
    kind: str
    space: object
    ratio: Callable[[object], float]
    exact_ratio: Callable[[object], Fraction]
    premise: Callable[[object], bool]
    #: the two routes agree when |ratio - exact_ratio| <= agreement x max(1, |ratio|)
    agreement: float = TOLERANCE

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FalsifyError(f"kind: expected one of {KINDS}; got {self.kind!r}")


def _pair_premise(pair: TaskPair) -> bool:
    """Lemma C.3 compares two different tasks; d >= MIN_DISTANCE keeps the ratio's digits."""
    return tabular.distance(*pair.tasks, units="task") >= MIN_DISTANCE


def _lemma_c3_ratio(gaps: PairGaps, gamma: float) -> float:
    return max(gaps.reward_gap, gaps.utility_gap) / (simulation_lemma_constant(gamma)
                                                     * gaps.distance)


def _corrected_ratio(gaps: PairGaps, gamma: float):
    L_r, L_c = corrected_simulation_constants(gamma)
    if isinstance(gaps.distance, Fraction):
        return max(gaps.reward_gap / (Fraction(L_r) * gaps.distance),
                   gaps.utility_gap / (Fraction(L_c) * gaps.distance))
    return max(gaps.reward_gap / (L_r * gaps.distance), gaps.utility_gap / (L_c * gaps.distance))


def _exact_lemma_c3(pair: TaskPair) -> Fraction:
    gaps = exact_gaps(pair)
    return max(gaps.reward_gap, gaps.utility_gap) / (
        gaps.distance * Fraction(simulation_lemma_constant(pair.gamma)))


LEMMA_C3 = RatioClaim(
    "lemma-c3", "Lemma C.3",
    "max(|V_r^M1 - V_r^M2|, |V_c^M1 - V_c^M2|) <= L d(M1, M2), L = 1/(1-gamma) + "
    "2 gamma/(1-gamma)^2 (App. C.2, p. 15)",
    "paper-statement", TaskPairSpace(),
    lambda pair: _lemma_c3_ratio(toolkit_gaps(pair), pair.gamma),
    _exact_lemma_c3, _pair_premise)

LEMMA_C3_CORRECTED = RatioClaim(
    "lemma-c3-corrected", "Lemma C.3 (corrected constants)",
    "|Delta V_r| <= (2/(1-gamma) + gamma/(1-gamma)^2) d and |Delta V_c| <= (3/(1-gamma) + "
    "2 gamma/(1-gamma)^2) d: the simulation lemma with the initial-distribution term",
    "check", TaskPairSpace(),
    lambda pair: float(_corrected_ratio(toolkit_gaps(pair), pair.gamma)),
    lambda pair: _corrected_ratio(exact_gaps(pair), pair.gamma), _pair_premise)

# --- Lemma 3.5, items 1 (values) and 2: the cover's predictions on a task within eps ----------


def slater_margin(pair: TaskPair) -> float:
    """xi of Assumption 3.3 for the pair: min over the two tasks of max_pi V_c (paper units,
    by the minimum-cost LP of each task's cost form)."""
    margins = []
    for task in pair.tasks:
        margins.append(float(task.utility_form.cost_value_to_paper(tabular.minimum_cost(task))))
    return min(margins)


def lemma_3_5_setting(pair: TaskPair) -> bool:
    """Lemma 3.5's setting with M1 the cover task (its tuple holds pi = ``policy``, an optimal
    policy of M1, with u, v its values on M1) and M2 a task within eps = d(M1, M2): Assumption
    3.3 with xi > 0, the premise (8L + 18) eps <= xi (p. 5), and ``policy`` optimal and
    feasible on M1 (checked by the LP, 1e-9)."""
    xi = slater_margin(pair)
    d = tabular.distance(*pair.tasks, units="task")
    L = simulation_lemma_constant(pair.gamma)
    if not (xi > 0 and (8 * L + 18) * d <= xi):
        return False
    m1 = pair.tasks[0]
    value = tabular.evaluate(m1, pair.policy)
    optimum = tabular.solve(m1, backend="highspy").reward_value
    return bool(value.reward_value >= optimum - 1e-9 and value.slack >= -1e-9)


def _lemma_3_5_premise(pair: TaskPair) -> bool:
    """:func:`lemma_3_5_setting` on pairs at least ``MIN_DISTANCE`` apart (the ratio's digits)."""
    return _pair_premise(pair) and lemma_3_5_setting(pair)


LEMMA_3_5 = RatioClaim(
    "lemma-3.5", "Lemma 3.5",
    "items 1-2: for M within eps of a cover task, the tuple's predictions u, v of its policy "
    "(an optimum of the cover task) and u_s, v_s of pi_s are within eps L of the values on M "
    "(and pi_s is (xi - eps L)-feasible), under (8L + 18) eps <= xi (Sec. 3.1, p. 5)",
    "paper-statement", TaskPairSpace(),
    lambda pair: _lemma_c3_ratio(toolkit_gaps(pair), pair.gamma),
    _exact_lemma_c3, _lemma_3_5_premise)

# --- Eq. 6: the closed-form mixture weights against App. D's recursion ---------------------------


@dataclass(frozen=True)
class WeightInstance:
    """Safe-PCE's mixture-weight inputs in the paper's units: pi_s's predicted utility value
    ``v_s`` (in (0, 1/(1-gamma)]), the cover radius ``eps``, gamma (L is the paper's,
    :func:`safepce.tabular.distance.simulation_lemma_constant`) and the stages compared."""

    v_s: float
    eps: float
    gamma: float
    n_stages: int

    ARRAYS = ("v_s", "eps", "gamma", "n_stages")

    def size(self) -> tuple[int, int]:
        return (self.n_stages, 0)

    def describe(self) -> str:
        return (f"v_s = {self.v_s:.10g}, eps = {self.eps:.6g}, gamma = {self.gamma:.6g}, "
                f"stages 1..{self.n_stages}")

    def save(self, path: Path) -> None:
        np.savez(path, v_s=np.float64(self.v_s), eps=np.float64(self.eps),
                 gamma=np.float64(self.gamma), n_stages=np.int64(self.n_stages))

    @classmethod
    def load(cls, path: Path) -> WeightInstance:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(float(data["v_s"]), float(data["eps"]), float(data["gamma"]),
                           int(data["n_stages"]))
        except (OSError, KeyError, ValueError) as exc:
            raise FalsifyError(f"{path}: not a mixture-weight counterexample ({exc})") from None


#: the stages compared at most (App. D's recursion in exact arithmetic grows by ~100 bits a
#: stage)
MAX_STAGES = 120


def eq_6_lower_end(eps: float, L: float) -> float:
    """Eq. 6's premise in the paper's utility units: its weights lie in (0, 1) and C_l < 1 only
    for v_s > max((4L+9) eps, 2 eps (L+2)) (kappa and alpha_1's margin)."""
    return max((4 * L + 9) * eps, 2 * eps * (L + 2))


def _weight_instance(v_fraction: float, eps: float, gamma: float) -> WeightInstance:
    """v_s placed at ``v_fraction`` of the way from the premise's lower end to 1/(1-gamma);
    the stages up to Eq. 7's m(l) (at most MAX_STAGES)."""
    L = simulation_lemma_constant(gamma)
    low = eq_6_lower_end(eps, L)
    v_s = low + v_fraction * (1 / (1 - gamma) - low)
    limit = stage_limit(v_s, eps, L)
    stages = int(min(MAX_STAGES, max(1, math.ceil(limit) + 1))) if limit >= 0 else 1
    return WeightInstance(float(v_s), float(eps), float(gamma), stages)


class WeightSpace:
    """(v_s, eps, gamma) where Eq. 6's premise v_s > max((4L+9) eps, 2 eps (L+2)) can hold."""

    @staticmethod
    def load(path: Path) -> WeightInstance:
        return WeightInstance.load(path)

    EPSILONS = (1e-7, 1e-5, 1e-4, 1e-3)
    GAMMAS = (0.01, 0.1, 0.5, 0.9, 0.99)
    FRACTIONS = (1e-9, 1e-6, 1e-3, 0.01, 0.1, 0.5, 0.9, 1.0)

    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[WeightInstance]:
        for _ in range(n):
            yield _weight_instance(float(rng.choice(self.FRACTIONS)) * float(rng.uniform(0.5, 1)),
                                   float(rng.choice(self.EPSILONS)),
                                   float(rng.choice(self.GAMMAS)))

    def strategy(self):
        from hypothesis import strategies as st

        return st.builds(_weight_instance, st.floats(1e-9, 1.0), st.sampled_from(self.EPSILONS),
                         st.sampled_from(self.GAMMAS))

    def encode(self, instance: WeightInstance) -> np.ndarray:
        L = simulation_lemma_constant(instance.gamma)
        low = eq_6_lower_end(instance.eps, L)
        fraction = (instance.v_s - low) / (1 / (1 - instance.gamma) - low)
        return np.array([logit(fraction, 1e-12), np.log(instance.eps),
                         logit(instance.gamma, 1e-12)])

    def decode(self, x: np.ndarray, like: WeightInstance) -> WeightInstance:
        fraction, gamma = sigmoid(x[0]), sigmoid(x[2])
        gamma = float(np.clip(gamma, 1e-3, 0.999))
        eps = float(np.clip(np.exp(x[1]), 1e-12, 1e-2))
        return _weight_instance(float(fraction), eps, gamma)


def _weights_premise(instance: WeightInstance) -> bool:
    L = simulation_lemma_constant(instance.gamma)
    return (instance.v_s > eq_6_lower_end(instance.eps, L)
            and instance.v_s <= 1 / (1 - instance.gamma))


#: the largest difference between the closed form and the recursion tolerated (weights lie
#: in [0, 1])
WEIGHT_TOLERANCE = 1e-9


def _weights_ratio(instance: WeightInstance) -> float:
    L = simulation_lemma_constant(instance.gamma)
    args = (instance.v_s, instance.eps, L, instance.gamma, instance.n_stages)
    return float(np.max(np.abs(mixture_weights(*args) - mixture_weights_recursive(*args)))
                 / WEIGHT_TOLERANCE)


def _exact_weights_ratio(instance: WeightInstance) -> Fraction:
    """Eq. 6 and App. D's recursion restated here in exact rational arithmetic."""
    F = Fraction
    gamma, eps, v = F(instance.gamma), F(instance.eps), F(instance.v_s)
    L = F(simulation_lemma_constant(instance.gamma))
    kappa = (4 * L + 9) * eps
    margin = v - 2 * eps * (L + 2)
    alpha_1 = margin / (margin + 2 / (1 - gamma))
    C = (2 * v + kappa) / (3 * v)
    worst, recursive, power = F(0), alpha_1, F(1)
    for _ in range(1, instance.n_stages):            # compares alpha_2 .. alpha_{n_stages}
        power *= C
        closed = (v - kappa) * alpha_1 / (v * alpha_1 + (v - kappa - v * alpha_1) * power)
        recursive = recursive * 3 * v / ((2 + recursive) * v + kappa)
        worst = max(worst, abs(closed - recursive))
    return worst / F(WEIGHT_TOLERANCE)


EQ_6 = RatioClaim(
    "eq-6", "Eq. 6",
    "the closed-form mixture weights alpha_{l,m+1} of Eq. 6 equal App. D's recursion "
    "alpha_{m+1} = 3 v_s alpha_m / ((2 + alpha_m) v_s + kappa) (to 1e-9) at every stage up to "
    "Eq. 7's m(l) (at most 120)",
    "check", WeightSpace(), _weights_ratio, _exact_weights_ratio, _weights_premise,
    agreement=0.5)


RATIO_CLAIMS: tuple[RatioClaim, ...] = (LEMMA_C3, LEMMA_C3_CORRECTED, LEMMA_3_5, EQ_6)


# --- the search --------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """What :func:`falsify` found for one claim."""

    claim: str
    kind: str
    budget: str
    evaluations: int
    worst_ratio: float
    worst_stage: str
    worst_instance: object = field(repr=False)
    premise_held: bool
    #: the smallest instance with ratio > 1 + TOLERANCE (None: none found)
    counterexample: object = field(default=None, repr=False)
    counterexample_ratio: float = math.nan
    #: the exact route on the counterexample (or on the worst instance when there is none)
    exact_ratio: Fraction | None = None
    routes_agree: bool = True
    by_stage: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.routes_agree:
            return "failed"
        if self.exact_ratio is not None and self.exact_ratio > 1 + TOLERANCE:
            return "refuted" if self.kind == "paper-statement" else "failed"
        return "passed"


class _Tracker:
    def __init__(self, claim: RatioClaim):
        self.claim = claim
        self.evaluations = 0
        self.best: list[tuple[float, str, object]] = []       # (ratio, stage, instance), sorted
        self.refuting: list[tuple[float, object]] = []
        self.by_stage: dict[str, float] = {}
        #: a spread of evaluated instances (every SAMPLE_EVERY-th), for the route comparison:
        #: a search that maximises the ratio avoids instances where an overestimate shows
        self.sample: list[tuple[float, object]] = []

    def evaluate(self, instance, stage: str) -> float:
        self.evaluations += 1
        try:
            if not self.claim.premise(instance):
                return -math.inf
            value = float(self.claim.ratio(instance))
        except (InputError, np.linalg.LinAlgError, FloatingPointError):
            return -math.inf
        if not math.isfinite(value):
            return -math.inf
        self.by_stage[stage] = max(self.by_stage.get(stage, -math.inf), value)
        if self.evaluations % SAMPLE_EVERY == 1 and len(self.sample) < AGREEMENT_CHECKS:
            self.sample.append((value, instance))
        self.best.append((value, stage, instance))
        self.best.sort(key=lambda item: -item[0])
        del self.best[64:]
        if value > 1 + TOLERANCE:
            self.refuting.append((value, instance))
        return value


def falsify(claim: RatioClaim, budget: SearchBudget = QUICK, seed: int = 0) -> SearchResult:
    """Search for the instance that maximises ``claim.ratio`` (see the module docstring); the
    same seed gives the same search."""
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hypothesis_seed
    from scipy.optimize import minimize

    tracker = _Tracker(claim)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 22]))
    for instance in claim.space.extremes(rng, budget.extremes):
        tracker.evaluate(instance, "extremes")

    if budget.hypothesis_examples:
        @hypothesis_seed(seed)
        @settings(max_examples=budget.hypothesis_examples, database=None, deadline=None,
                  phases=[Phase.generate, Phase.target], suppress_health_check=list(HealthCheck))
        @given(claim.space.strategy())
        def search(instance):
            value = tracker.evaluate(instance, "hypothesis")
            if math.isfinite(value):
                target(value, label=claim.name)

        search()

    starts, seen = [], set()
    for _, _, instance in tracker.best:
        key = claim.space.encode(instance).round(6).tobytes()
        if key not in seen:
            seen.add(key)
            starts.append(instance)
        if len(starts) == budget.restarts:
            break
    for start in starts:
        def objective(x, like=start):
            value = tracker.evaluate(claim.space.decode(x, like), "optimiser")
            return -value if math.isfinite(value) else 1e3

        minimize(objective, claim.space.encode(start), method="Powell",
                 options={"maxfev": budget.evaluations_per_restart, "xtol": 1e-8,
                          "ftol": 1e-12})

    if not tracker.best:
        raise FalsifyError(f"{claim.name}: the premise held on none of {tracker.evaluations} "
                           "instances; the search space does not reach the claim")
    worst_ratio, worst_stage, worst = tracker.best[0]
    result = SearchResult(claim.name, claim.kind, budget.describe(), tracker.evaluations,
                          worst_ratio, worst_stage, worst, claim.premise(worst),
                          by_stage=dict(tracker.by_stage))
    if tracker.refuting:
        smallest = min(tracker.refuting, key=lambda item: (item[1].size(), -item[0]))
        result.counterexample_ratio, result.counterexample = smallest
    checked = result.counterexample if result.counterexample is not None else worst
    result.exact_ratio = claim.exact_ratio(checked)
    # the two routes must agree on the reported instance and on the best ones the search
    # kept: a disagreement is a bug in the toolkit's own code (or in the exact route)
    compared = [(result.counterexample_ratio if result.counterexample is not None
                 else worst_ratio, result.exact_ratio)]
    compared += [(value, claim.exact_ratio(instance))
                 for value, _, instance in tracker.best[:AGREEMENT_CHECKS]]
    compared += [(value, claim.exact_ratio(instance)) for value, instance in tracker.sample]
    result.routes_agree = all(abs(float(exact) - fast) <= claim.agreement * max(1.0, abs(fast))
                              for fast, exact in compared)
    return result


# --- counterexamples on disk -------------------------------------------------------------------


def save_counterexample(folder: Path, claim: RatioClaim, result: SearchResult) -> Path | None:
    """Write ``folder/counterexamples/NAME.npz`` and ``NAME.json``; None when there is none."""
    if result.counterexample is None:
        return None
    target = Path(folder) / "counterexamples"
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{claim.name}.npz"
    result.counterexample.save(path)
    exact = result.exact_ratio
    description = {
        "claim": claim.name, "label": claim.label, "statement": claim.statement,
        "kind": claim.kind, "status": result.status,
        "ratio": result.counterexample_ratio, "exact_ratio": float(exact),
        "exact_ratio_fraction": f"{exact.numerator}/{exact.denominator}",
        "instance": result.counterexample.describe(),
    }
    (target / f"{claim.name}.json").write_text(json.dumps(description, indent=1) + "\n")
    return path


def all_ratio_claims() -> tuple[RatioClaim, ...]:
    """Every ratio claim of the toolkit (this module's and those of
    :mod:`safepce.bounds.falsify_cover`, :mod:`~safepce.bounds.falsify_optimality`,
    :mod:`~safepce.bounds.falsify_hard` and :mod:`~safepce.bounds.falsify_safety`)."""
    from .falsify_cover import LEMMA_C2
    from .falsify_hard import HARD_DISJOINT
    from .falsify_optimality import LEMMA_C4
    from .falsify_safety import SCHEDULE_CLAIMS

    return (*RATIO_CLAIMS, LEMMA_C2, LEMMA_C4, HARD_DISJOINT, *SCHEDULE_CLAIMS)


def claim_by_name(name: str) -> RatioClaim:
    claims = all_ratio_claims()
    for claim in claims:
        if claim.name == name:
            return claim
    raise FalsifyError(f"claim: expected one of {[c.name for c in claims]}; got {name!r}")


def replay(path: Path, claim: RatioClaim | None = None) -> dict:
    """Re-evaluate a saved counterexample by both routes: {"ratio", "exact_ratio", "refutes"}."""
    path = Path(path)
    claim = claim or claim_by_name(path.stem)
    instance = claim.space.load(path)
    exact = claim.exact_ratio(instance)
    return {"ratio": float(claim.ratio(instance)), "exact_ratio": exact,
            "refutes": exact > 1 + TOLERANCE, "instance": instance}


__all__ = ["EQ_6", "FULL", "LEMMA_3_5", "LEMMA_C3", "LEMMA_C3_CORRECTED", "QUICK", "RATIO_CLAIMS",
           "all_ratio_claims",
           "TOLERANCE", "FalsifyError", "PairGaps", "RatioClaim", "SearchBudget",
           "SearchResult", "TaskPair", "TaskPairSpace", "WeightInstance", "WeightSpace",
           "claim_by_name", "exact_gaps", "exact_values", "falsify", "replay",
           "save_counterexample", "toolkit_gaps"]
