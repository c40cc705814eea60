"""DOPE (Bura et al., NeurIPS 2022) and DOPE+ (Yu, Lee, Overman, Lee, 2025), discounted.

Both are model-based: from the transitions seen so far they build an empirical kernel P_hat and a
confidence set ``|P(s'|s,a) - P_hat(s'|s,a)| <= w(s,a,s')``, and plan with the *extended* (lifted)
occupancy LP

    max_{mu, q}  sum mu(s,a) (r(s,a) + bonus_r(s,a))
    s.t.  sum_a mu(s',a) - gamma sum_{s,a} q(s,a,s') = rho(s')        (flow, under P_tilde)
          sum_s' q(s,a,s') = mu(s,a)                                 (q = mu P_tilde)
          (P_hat - w) mu(s,a) <= q(s,a,s') <= (P_hat + w) mu(s,a)    (P_tilde in the set)
          sum mu(s,a) (k(s,a) + bonus_k(s,a)) <= b,   mu, q >= 0,

optimistic in the model (the LP picks P_tilde) and in reward, pessimistic in cost. The policy is
``pi(a|s) = mu(s,a) / sum_a mu(s,a)`` (pi_s where mu puts no mass). Values are in task units.

Why the cost bonus makes the plan safe. If the true P lies in the set, P and P_tilde differ by at
most 2 sum_s' w in L1 at every pair, so by the simulation lemma (value difference = gamma
E_{d_tilde}[(P - P_tilde) V]) the true cost of pi is at most its cost under P_tilde with the
per-step cost raised by ``bonus_k(s,a) = gamma k_max / (1 - gamma) min(1, sum_s' w(s,a,s'))``.
The reward bonus is the same expression with r_max. Pairs never visited have w = 1 (anything).

The two algorithms differ in their widths (n = visits of (s,a), iota = ln(4 S^2 A N / delta), N
the most transitions a run can see):

* DOPE: DOPE's Bernstein set, ``w = sqrt(4 P_hat (1 - P_hat) iota / n) + 14 iota / (3 n)``;
* DOPE+: the tighter empirical-Bernstein widths,
  ``w = sqrt(2 P_hat (1 - P_hat) iota / n) + 7 iota / (3 (n - 1))``.

Both multiply the widths of pairs with data by ``bonus_scale`` (1 = the worst-case form above),
which shrinks the confidence set and both bonuses together; a pair without data (n = 0, or n < 2
for DOPE+) keeps width 1 and the full worst-case bonus, so an untried action is planned only with
the occupancy its worst-case cost leaves room for.

Schedule. pi_s is played until the pessimistic problem is feasible (checked every
``warmup_check`` episodes, and not before ``warmup`` episodes); afterwards the LP is re-solved
when the visit count of some pair has doubled since the last plan (UCRL2's doubling rule),
at most once per ``min_replan`` episodes. When a re-plan is infeasible pi_s is played.

Presets. ``theory``: bonus_scale 1, no minimum warm-up. With these worst-case bonuses the
pessimistic problem of the gridworld stays infeasible for the whole run (DOPE+'s cost bonus of
an interior pair at noise 0.3 is 40 per step after 10^4 visits and 5.8 after 10^5, against a
discounted budget of 1.5), so the algorithm plays pi_s throughout. ``paper-experiment``: the
warm-up of about 14,000 episodes read off the authors' Figure 2 (the text gives no number): at
least 14,000 episodes of
pi_s, and ``bonus_scale`` = the largest value on a halving grid (1, 1/2, 1/4, ...) at which
DOPE+'s pessimistic problem is feasible after 14,000 episodes of pi_s on the experiment's cover
tasks (our calibration; the paper gives no bonus constants), shared by DOPE. Solver: Clarabel on
the lifted LP, the faster at this size (:func:`extended_lp`; HiGHS is the alternative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from safepce.tabular import CMDP
from safepce.tabular.solve import highs

from ..harness import Deployment
from ..training import TrainingResult
from .baselines import BaselineInputError, FamilyBaseline, Scales, positive, resolve_preset
from .extended_planning import solve_extended

#: bonus_scale of the paper-experiment preset (calibration in the module docstring)
PAPER_EXPERIMENT_BONUS_SCALE = 2.0**-11
PAPER_EXPERIMENT_WARMUP = 14_000


@dataclass(frozen=True)
class DOPEPreset:
    """Every number of a DOPE / DOPE+ preset (see the module docstring)."""

    name: str
    delta: float = 0.05
    bonus_scale: float = 1.0
    warmup: int = 0
    warmup_check: int = 1000
    min_replan: int = 1000
    #: how the extended LP is solved (:data:`LP_SOLVERS`); every solver returns an optimum of
    #: the same LP, but not the same one when the optimal face is not a point
    solver: str = "lagrangian"


#: worst-case (simulation-lemma) widths, no warm-up: the algorithm's own guarantee
DOPE_THEORY = DOPEPreset("theory")
#: widths of visited pairs scaled by 2^-11 (calibrated to the reported 14,000-episode warm-up)
DOPE_EXPERIMENT = DOPEPreset("paper-experiment", bonus_scale=PAPER_EXPERIMENT_BONUS_SCALE,
                             warmup=PAPER_EXPERIMENT_WARMUP)


class InfeasiblePlanError(RuntimeError):
    """The pessimistic extended LP has no solution."""


@dataclass(frozen=True, eq=False)
class Plan:
    """A solution of the extended LP: ``policy`` (S, A), ``occupancy`` mu (S, A) and
    ``kernel`` P_tilde (S, A, S) chosen by the LP, and its optimistic value (task units)."""

    policy: np.ndarray
    occupancy: np.ndarray
    kernel: np.ndarray
    value: float


def widths(counts: np.ndarray, kernel_hat: np.ndarray, iota: float, form: str) -> np.ndarray:
    """w(s, a, s') of the confidence set for visit counts ``counts`` (S, A); 1 where n = 0
    (and, for DOPE+, where n = 1)."""
    n = counts[..., None].astype(float)
    variance = kernel_hat * (1 - kernel_hat)
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "dope":
            w = np.sqrt(4 * variance * iota / n) + 14 * iota / (3 * n)
            undefined = n < 1
        elif form == "dope-plus":
            w = np.sqrt(2 * variance * iota / n) + 7 * iota / (3 * (n - 1))
            undefined = n < 2
        else:
            raise BaselineInputError(f"form: expected 'dope' or 'dope-plus'; got {form!r}")
    return np.where(undefined, 1.0, np.minimum(w, 1.0))


def bonus(w: np.ndarray, signal_max: float, gamma: float) -> np.ndarray:
    """``gamma signal_max / (1 - gamma) min(1, sum_s' w(s,a,s'))`` (simulation-lemma bonus)."""
    return gamma * signal_max / (1 - gamma) * np.minimum(1.0, w.sum(axis=2))


@dataclass(frozen=True, eq=False)
class ExtendedLP:
    """The lifted LP ``max objective @ x`` s.t. ``row_lower <= matrix @ x <= row_upper``,
    ``x >= 0``, with x = (mu (S*A), q (S*A*S)); any LP solver can take it."""

    objective: np.ndarray
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    shape: tuple[int, int]          # (S, A)


def extended_lp_model(kernel_hat: np.ndarray, width: np.ndarray, rho: np.ndarray,
                      reward: np.ndarray, cost: np.ndarray, budget: float,
                      gamma: float) -> ExtendedLP:
    """The constraint rows of the module docstring's LP (bound rows that the simplex would find
    redundant, P_hat + w >= 1 or P_hat - w <= 0, are left out)."""
    S, A = reward.shape
    SA, SAS = S * A, S * A * S
    lower = np.clip(kernel_hat - width, 0.0, 1.0).reshape(-1)
    upper = np.clip(kernel_hat + width, 0.0, 1.0).reshape(-1)
    pair_of = np.repeat(np.arange(SA), S)              # q index -> its (s, a)
    next_of = np.tile(np.arange(S), SA)                # q index -> s'
    # columns: mu (SA) then q (SAS); rows: flow (S), consistency (SA), cost (1), then the
    # non-redundant bound rows (upper where P_hat + w < 1, lower where P_hat - w > 0)
    up_rows = np.flatnonzero(upper < 1.0)
    low_rows = np.flatnonzero(lower > 0.0)
    n_rows = S + SA + 1 + up_rows.size + low_rows.size
    mu_cols = np.arange(SA)
    q_cols = SA + np.arange(SAS)
    r0 = S + SA + 1
    up_index = r0 + np.arange(up_rows.size)
    low_index = r0 + up_rows.size + np.arange(low_rows.size)
    rows = np.concatenate([mu_cols // A, next_of,                 # flow
                           S + mu_cols, S + pair_of,              # consistency
                           np.full(SA, S + SA),                   # cost
                           up_index, up_index, low_index, low_index])
    cols = np.concatenate([mu_cols, q_cols, mu_cols, q_cols, mu_cols,
                           SA + up_rows, pair_of[up_rows], SA + low_rows, pair_of[low_rows]])
    values = np.concatenate([
        np.ones(SA), -gamma * np.ones(SAS), -np.ones(SA), np.ones(SAS), cost.reshape(-1),
        np.ones(up_rows.size), -upper[up_rows], np.ones(low_rows.size), -lower[low_rows]])
    matrix = sp.csc_matrix((values, (rows, cols)), shape=(n_rows, SA + SAS))
    row_lower = np.concatenate([rho, np.zeros(SA), [-np.inf], np.full(up_rows.size, -np.inf),
                                np.zeros(low_rows.size)])
    row_upper = np.concatenate([rho, np.zeros(SA), [budget], np.zeros(up_rows.size),
                                np.full(low_rows.size, np.inf)])
    objective = np.concatenate([reward.reshape(-1), np.zeros(SAS)])
    return ExtendedLP(objective, matrix, row_lower, row_upper, (S, A))


def plan_from_solution(model: ExtendedLP, x: np.ndarray, kernel_hat: np.ndarray) -> Plan:
    """Policy, occupancy and the LP's kernel from a solution vector x = (mu, q)."""
    S, A = model.shape
    x = np.clip(x, 0.0, None)
    mu = x[:S * A].reshape(S, A)
    q = x[S * A:].reshape(S, A, S)
    # an interior-point solution leaves ~1e-10 on pairs a vertex would leave at zero
    mu = np.where(mu > 1e-9 * mu.sum(), mu, 0.0)
    totals = mu.sum(axis=1, keepdims=True)
    policy = np.where(totals > 0, mu / np.where(totals > 0, totals, 1.0), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(mu[..., None] > 0, q / mu[..., None], kernel_hat)
    return Plan(policy=policy, occupancy=mu, kernel=kernel, value=float(model.objective @ x))


LP_SOLVERS = ("lagrangian", "clarabel", "highs")


def extended_lp(kernel_hat: np.ndarray, width: np.ndarray, rho: np.ndarray, reward: np.ndarray,
                cost: np.ndarray, budget: float, gamma: float, solver: str = "lagrangian"
                ) -> Plan:
    """Solve the lifted occupancy LP of the module docstring.

    ``reward`` and ``cost`` already include their bonuses (task units, (S, A)); with zero widths
    it is the ordinary occupancy LP of the kernel ``kernel_hat`` (same optimum as
    :func:`safepce.tabular.solve`). Raises :class:`InfeasiblePlanError` when no occupancy meets the
    budget. ``solver``: "lagrangian" (default; exact, by policy iteration on the extended MDP
    inside a search on the multiplier, :mod:`safepce.theory.algorithms.extended_planning`: a few ms
    on
    the gridworld's 9,800-column LP), "clarabel" (interior point: 110-185 ms) or "highs" (dual
    simplex, a vertex solution: 320-460 ms); benchmarks/bench_extended_lp.py. Occupancy below
    1e-9 of the total counts as none (pi_s is played where a state has none).
    """
    if solver not in LP_SOLVERS:
        raise BaselineInputError(f"solver: expected one of {LP_SOLVERS}; got {solver!r}")
    model = extended_lp_model(kernel_hat, width, rho, reward, cost, budget, gamma)
    if solver == "lagrangian":
        x = solve_extended(kernel_hat, width, rho, reward, cost, budget, gamma)
        if x is None:
            raise InfeasiblePlanError("the pessimistic extended LP is infeasible")
    else:
        x = _solve_clarabel(model) if solver == "clarabel" else _solve_highs(model)
    return plan_from_solution(model, x, kernel_hat)


def _solve_highs(model: ExtendedLP) -> np.ndarray:
    import highspy

    inf = highspy.kHighsInf
    n_rows, n_cols = model.matrix.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = model.objective
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.full(n_cols, inf)
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -inf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), inf, model.row_upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = model.matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = model.matrix.data
    solver = highs()
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        raise InfeasiblePlanError("the pessimistic extended LP is infeasible")
    if status != highspy.HighsModelStatus.kOptimal:
        raise InfeasiblePlanError(f"HiGHS status {solver.modelStatusToString(status)!r}")
    return np.asarray(solver.getSolution().col_value)


def _solve_clarabel(model: ExtendedLP) -> np.ndarray:
    """The LP in Clarabel's conic form: min -objective @ x s.t. A x + s = b, s in
    {0}^equalities x R_+^(inequalities and x >= 0)."""
    import clarabel

    rows = model.matrix.tocsr()
    equal = model.row_lower == model.row_upper
    upper = ~equal & np.isfinite(model.row_upper)
    lower = ~equal & np.isfinite(model.row_lower)
    n = rows.shape[1]
    A = sp.vstack([rows[equal], rows[upper], -rows[lower],
                   -sp.identity(n, format="csr")]).tocsc()
    b = np.concatenate([model.row_upper[equal], model.row_upper[upper], -model.row_lower[lower],
                        np.zeros(n)])
    cones = [clarabel.ZeroConeT(int(equal.sum())),
             clarabel.NonnegativeConeT(int(upper.sum() + lower.sum()) + n)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solution = clarabel.DefaultSolver(sp.csc_matrix((n, n)), -model.objective, A, b, cones,
                                      settings).solve()
    status = str(solution.status)
    if "Infeasible" in status:
        raise InfeasiblePlanError("the pessimistic extended LP is infeasible")
    if status not in ("Solved", "AlmostSolved"):
        raise InfeasiblePlanError(f"Clarabel status {status!r}")
    return np.asarray(solution.x)


@numba.njit(cache=True)
def _count_transitions(states, actions, counts):
    """counts[s_t, a_t, s_{t+1}] += 1 over every recorded step with a successor."""
    for e in range(states.shape[0]):
        for t in range(states.shape[1] - 1):
            counts[states[e, t], actions[e, t], states[e, t + 1]] += 1


class DOPE(FamilyBaseline):
    """DOPE (``form="dope"``) and DOPE+ (``form="dope-plus"``); see the module docstring."""

    name = "dope"
    needs_trajectories = True
    form = "dope"

    def __init__(self, training: TrainingResult, tasks: list[CMDP], horizon: int,
                 preset: DOPEPreset = DOPE_EXPERIMENT, **overrides):
        preset = resolve_preset(preset, DOPEPreset, overrides)
        delta, bonus_scale, warmup = preset.delta, preset.bonus_scale, preset.warmup
        warmup_check, min_replan = preset.warmup_check, preset.min_replan
        if not 0 < delta < 1:
            raise BaselineInputError(f"delta: expected a number in (0, 1); got {delta!r}")
        positive("bonus_scale", bonus_scale)
        for field_name, value in (("warmup_check", warmup_check), ("min_replan", min_replan),
                                  ("horizon", horizon)):
            positive(field_name, value, integer=True)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise BaselineInputError(f"warmup: expected an integer >= 0; got {warmup!r}")
        if preset.solver not in LP_SOLVERS:
            raise BaselineInputError(f"solver: expected one of {LP_SOLVERS}; got "
                                     f"{preset.solver!r}")
        self.preset_object = preset
        self.preset = preset.name
        self.scales = Scales.of(tasks)
        reference = tasks[0]
        # the family's static structure (same in every task of the gridworld family)
        self.rho, self.reward, self.cost = reference.rho, reference.r, reference.costs[..., 0]
        self.safe_policy = training.safe_policy
        self.delta, self.bonus_scale = float(delta), float(bonus_scale)
        self.warmup, self.warmup_check = int(warmup), int(warmup_check)
        self.min_replan = int(min_replan)
        self.horizon = int(horizon)

    # --- the model ---------------------------------------------------------------------

    def plan(self) -> Plan:
        """The pessimistic-optimistic plan from the counts so far (may raise
        :class:`InfeasiblePlanError`)."""
        return extended_lp(*self.lp_inputs(), solver=self.preset_object.solver)

    def lp_inputs(self) -> tuple:
        """The arguments of :func:`extended_lp` for the counts so far: (P_hat, widths, rho,
        reward + bonus, cost + bonus, budget, gamma)."""
        s = self.scales
        n = self.transitions.sum(axis=2)
        kernel_hat = np.where(n[..., None] > 0, self.transitions / np.maximum(n, 1)[..., None],
                              1.0 / s.n_states)
        w = widths(n, kernel_hat, self.iota, self.form)
        # bonus_scale shrinks the statistical widths of pairs with data (the set the LP may pick
        # P_tilde from, and the bonuses with it); a pair without data keeps width 1, the full
        # worst-case bonus, which keeps an untried action's true cost covered
        w = np.where((n >= (2 if self.form == "dope-plus" else 1))[..., None],
                     self.bonus_scale * w, w)
        reward = self.reward + bonus(w, s.reward_max, s.gamma)
        cost = self.cost + bonus(w, s.cost_max, s.gamma)
        return kernel_hat, w, self.rho, reward, cost, s.budget, s.gamma

    def _count(self, batch) -> None:
        _count_transitions(batch.states, batch.actions, self.transitions)

    def _try_plan(self) -> bool:
        self.plans_tried += 1
        try:
            plan = self.plan()
        except InfeasiblePlanError:
            self.policy, self.key = self.safe_policy, "safe"
            return False
        self.policy = np.where(np.isnan(plan.policy), self.safe_policy, plan.policy)
        self.key = ("plan", self.plans_tried)
        self.planned_counts = self.transitions.sum(axis=2)
        self.events.append({"episode": self.episode, "event": "plan",
                            "optimistic_value": plan.value})
        return True

    # --- TestTimeAlgorithm --------------------------------------------------------------

    def reset(self, n_episodes: int, seed=None) -> None:
        s = self.scales
        self.n_episodes = int(n_episodes)
        self.iota = math.log(4 * s.n_states**2 * s.n_actions * n_episodes * self.horizon
                             / self.delta)
        self.transitions = np.zeros((s.n_states, s.n_actions, s.n_states))
        self.episode = 0
        self.last_plan = 0
        self.warming_up = True
        self.plans_tried = 0
        self.planned_counts = np.zeros((s.n_states, s.n_actions))
        self.policy, self.key = self.safe_policy, "safe"
        self.events: list[dict] = []

    def deployment(self) -> Deployment:
        if self.warming_up:
            next_check = max(self.warmup, (self.episode // self.warmup_check + 1)
                             * self.warmup_check)
            block = min(next_check - self.episode, self.warmup_check)
        else:
            block = self.min_replan
        return Deployment((self.policy,), np.ones(1), (self.key,), max(1, block))

    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray,
                trajectories=None) -> int:
        size = reward_returns.size
        self._count(trajectories)
        self.episode += size
        if self.warming_up:
            if self.episode >= self.warmup and self.episode % self.warmup_check == 0:
                if self._try_plan():
                    self.warming_up = False
                    self.last_plan = self.episode
                    self.events.append({"episode": self.episode, "event": "warm-up ended"})
        elif self.episode - self.last_plan >= self.min_replan:
            counts = self.transitions.sum(axis=2)
            if np.any(counts >= 2 * np.maximum(self.planned_counts, 1)):
                self.last_plan = self.episode
                self._try_plan()
        return size

    def log(self) -> dict:
        return {"preset": self.preset, "form": self.form, "delta": self.delta,
                "bonus_scale": self.bonus_scale, "warmup": self.warmup,
                "solver": self.preset_object.solver, "plans_tried": self.plans_tried,
                "events": self.events}


def calibrate_bonus_scale(training: TrainingResult, tasks: list[CMDP], horizon: int,
                          episodes: int = PAPER_EXPERIMENT_WARMUP, seed: int = 0,
                          form: str = "dope-plus", smallest: float = 2.0**-12) -> float:
    """The largest bonus_scale on the halving grid 1, 1/2, ... (down to ``smallest``) at which the
    pessimistic problem is feasible on *every* task after ``episodes`` episodes of pi_s (how the
    paper-experiment preset's constant was obtained from the reported warm-up length)."""
    from safepce import tabular
    algorithms = []
    for i, task in enumerate(tasks):
        algorithm = (DOPEPlus if form == "dope-plus" else DOPE)(
            training, tasks, horizon, preset=DOPE_THEORY)
        algorithm.reset(episodes, seed)
        for first in range(0, episodes, algorithm.warmup_check):
            size = min(algorithm.warmup_check, episodes - first)
            batch = tabular.simulate_trajectories(task, training.safe_policy, size, horizon,
                                                  seed=np.random.SeedSequence([seed, i]),
                                                  first_episode=first)
            algorithm._count(batch)
        algorithms.append(algorithm)
    scale = 1.0
    while scale >= smallest:
        try:
            for algorithm in algorithms:
                algorithm.bonus_scale = scale
                algorithm.plan()
            return scale
        except InfeasiblePlanError:
            scale /= 2
    raise InfeasiblePlanError(f"no bonus_scale >= {smallest:g} makes the warm-up end")


class DOPEPlus(DOPE):
    """DOPE+ : DOPE with the tighter empirical-Bernstein widths."""

    name = "dope-plus"
    form = "dope-plus"
