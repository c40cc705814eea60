"""The constrained optimum of a finite CMDP by the occupancy-measure LP (Altman 1999).

With unnormalised occupancy ``q(s, a) = sum_t gamma^t Pr(s_t = s, a_t = a)`` the CMDP is the LP

    maximise    <r, q>
    subject to  sum_a q(s', a) - gamma sum_{s,a} P(s'|s,a) q(s,a) = rho(s')   for every s'
                <cost_j, q> <= b_j                                         for every constraint j
                q >= 0,

whose optimal value is ``V_r(pi*)`` and whose dual holds the Lagrangian value function V_lambda
(flow rows) and the Lagrange multipliers lambda_j >= 0 (budget rows):
``rho^T V_lambda + b^T lambda = V_r(pi*)``. A simplex vertex has at most S + K basic variables,
so at most K states randomise. All values are in task (cost-form) units.

Interchangeable backends give the same optimum:

* ``"cvxpy"``: a DPP problem with parameters (a sparse parameter for ``gamma P``,
  canonicalisation backend COO) compiled once per (S, A, K, sparsity pattern) and re-used, solved
  with HiGHS (simplex, so a vertex) or Clarabel (interior point, not a vertex).
* ``"highspy"``: the same LP handed to HiGHS directly, with the constraint layout of each
  structure computed once; the fast path for families. Solves start cold so that results are
  bit-for-bit independent of what was solved before. Takes sparse tasks (the LP's matrix is
  built from the CSR kernel); the only exact route for K >= 2 constraints on large tasks.
* ``"lagrangian"`` (one constraint): :mod:`safepce.tabular.lagrangian`, policy iteration with
certified
  sparse solves inside an exact search on the multiplier, then the one-state randomisation that
  makes it the LP's vertex. No S x SA matrix is factorised, so it scales to S = 10^5.
* ``"auto"`` (default): ``"highspy"`` for dense tasks with S A <= 4,000 (what every safepce
  command used before, so their numbers are unchanged), else ``"lagrangian"`` for one
  constraint and ``"highspy"`` for several. Measured by ``benchmarks/bench_scale.py``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sparse

from .cmdp import CMDP, InvalidCMDPError
from .errors import InputError
from .evaluate import evaluate

logger = logging.getLogger(__name__)

#: an occupancy below this fraction of its state's total is a round-off of a non-basic zero
_SUPPORT_TOLERANCE = 1e-9
_BACKENDS = ("auto", "cvxpy", "highspy", "lagrangian")
#: ``backend="auto"`` keeps the highspy LP for dense tasks up to this many state-action pairs
_AUTO_LP_PAIRS = 4000
_POLISH_ATTEMPTS = 15
_LINEAR_ATTEMPTS = 5
_CACHE_SIZE = 8
#: set SAFEPCE_HIGHS_BANNER=1 to let HiGHS print its licence banner (quiet by default)
_BANNER_VARIABLE = "SAFEPCE_HIGHS_BANNER"
_banner_lock = threading.Lock()
_banner_done = False


def quiet_highs_banner() -> None:
    """Keep HiGHS's licence banner off stdout (it prints once per process, from C++, when the
    first ``highspy.Highs`` is made, before any option can be set): the first instance is made
    with file descriptor 1 pointed at /dev/null. Every HiGHS user in safepce (the highspy and
    cvxpy backends, the extended LP) calls this first; ``SAFEPCE_HIGHS_BANNER=1`` disables it."""
    global _banner_done
    with _banner_lock:
        if _banner_done:
            return
        _banner_done = True
        import highspy

        if os.environ.get(_BANNER_VARIABLE) == "1":
            return
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def highs():
    """A silent ``highspy.Highs`` instance (no banner, ``output_flag`` off)."""
    quiet_highs_banner()
    import highspy

    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    return solver


class InfeasibleCMDPError(InputError):
    """No policy meets the budget(s). ``minimum_cost`` holds the smallest achievable discounted
    cost of each constraint (task units), each minimised on its own."""

    def __init__(self, budget, minimum_cost):
        self.budget = budget
        self.minimum_cost = minimum_cost
        super().__init__(
            f"budget: expected a budget that some policy meets; the smallest achievable "
            f"discounted cost is {np.array2string(np.asarray(minimum_cost), precision=6)} "
            f"but the budget is {np.array2string(np.asarray(budget), precision=6)}")


class SolverError(RuntimeError):
    """The LP solver returned neither an optimum nor a certificate of infeasibility."""


@dataclass(frozen=True, eq=False)
class Solution:
    """The constrained optimum of a CMDP (task units).

    ``policy`` is (S, A); ``reward_value`` and ``cost_value`` are its exact values by
    :func:`safepce.tabular.evaluate` (``lp_value`` is the LP objective, equal up to solver
    tolerance);
    ``multipliers`` are the Lagrange multipliers lambda >= 0 of the budgets (scalar for one
    constraint); ``lagrangian_values`` is V_lambda (S,), the flow-row duals; ``occupancy`` is the
    normalised state-action occupancy (sums to 1); ``budget_tightening`` is how much the budget
    was lowered so that the returned policy is exactly feasible (0 almost always).
    """

    policy: np.ndarray
    reward_value: float
    cost_value: float | np.ndarray
    multipliers: float | np.ndarray
    lagrangian_values: np.ndarray
    occupancy: np.ndarray
    lp_value: float
    status: str
    backend: str
    budget_tightening: float | np.ndarray = 0.0


# --- structure shared by both backends ------------------------------------------------------


_patterns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _flow_pattern(cmdp: CMDP) -> tuple[tuple, np.ndarray, np.ndarray]:
    """(structure key, rows, cols) of ``gamma P`` as the (S x SA) matrix
    ``G[s', s A + a] = gamma P(s'|s, a)``; the key identifies (S, A, K, sparsity pattern)."""
    cached = _patterns.get(cmdp)
    if cached is None:
        # CSR order (pair, then next state) is np.nonzero's (s, a, s') order on a dense P
        kernel = cmdp.transition_matrix
        cols = np.repeat(np.arange(kernel.shape[0], dtype=np.int64), np.diff(kernel.indptr))
        rows = kernel.indices.astype(np.int64)
        key = (cmdp.n_states, cmdp.n_actions, cmdp.n_constraints, rows.tobytes(), cols.tobytes())
        cached = _patterns[cmdp] = (key, rows, cols)
    return cached


def _gamma_p_values(cmdp: CMDP, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if cmdp.is_sparse:
        return cmdp.gamma * cmdp.transition_matrix.data
    return cmdp.gamma * cmdp.P[cols // cmdp.n_actions, cols % cmdp.n_actions, rows]


class _LRU(OrderedDict):
    def get_or_build(self, key, build):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = build()
        if len(self) > _CACHE_SIZE:
            self.popitem(last=False)
        return value


# --- cvxpy backend -------------------------------------------------------------------------


class _CvxpyOccupancyLP:
    """The parametrised LP for one (S, A, K, sparsity) structure, compiled on first solve."""

    def __init__(self, cmdp: CMDP):
        import cvxpy as cp

        n_states, n_actions, n_constraints = cmdp.n_states, cmdp.n_actions, cmdp.n_constraints
        n_pairs = n_states * n_actions
        _, self.rows, self.cols = _flow_pattern(cmdp)
        self.gamma_p = cp.Parameter((n_states, n_pairs), sparsity=(self.rows, self.cols))
        self.reward = cp.Parameter(n_pairs)
        self.costs = cp.Parameter((n_constraints, n_pairs))
        self.budgets = cp.Parameter(n_constraints)
        self.rho = cp.Parameter(n_states)
        self.q = cp.Variable(n_pairs, nonneg=True)
        state_sum = sparse.kron(sparse.eye(n_states), np.ones((1, n_actions))).tocsr()
        self.flow = state_sum @ self.q - self.gamma_p @ self.q == self.rho
        self.budget = self.costs @ self.q <= self.budgets
        self.problem = cp.Problem(cp.Maximize(self.reward @ self.q), [self.flow, self.budget])
        self.compiled = False

    def solve(self, cmdp: CMDP, solver: str):
        n_pairs = cmdp.n_states * cmdp.n_actions
        values = _gamma_p_values(cmdp, self.rows, self.cols)
        self.gamma_p.value_sparse = sparse.coo_array(
            (values, (self.rows, self.cols)), shape=(cmdp.n_states, n_pairs))
        self.reward.value = cmdp.r.reshape(n_pairs)
        self.costs.value = cmdp.costs.reshape(n_pairs, cmdp.n_constraints).T
        self.budgets.value = cmdp.budgets
        self.rho.value = cmdp.rho
        # cold solves: a warm start from the previous task would make the last bits depend on
        # what this process solved before
        options = {"warm_start": False} | ({} if self.compiled else {"canon_backend": "COO"})
        with warnings.catch_warnings():
            # cvxpy reads its own sparse parameter through `.value` while stuffing the matrices.
            warnings.filterwarnings("ignore", message="Reading from a sparse CVXPY expression")
            quiet_highs_banner()
            self.problem.solve(solver=solver, **options)
        self.compiled = True
        status = self.problem.status
        if status in ("infeasible", "infeasible_inaccurate"):
            return "infeasible", None, None, None, None
        if status not in ("optimal", "optimal_inaccurate"):
            raise SolverError(f"cvxpy/{solver} returned status {status!r}")
        return (status, np.asarray(self.q.value, dtype=np.float64), float(self.problem.value),
                np.asarray(self.flow.dual_value, dtype=np.float64),
                np.atleast_1d(np.asarray(self.budget.dual_value, dtype=np.float64)))


# --- highspy backend -----------------------------------------------------------------------


class _HighsOccupancyLP:
    """One HiGHS object per structure. Solves start cold unless ``warm_start``: a cold solve's
    result does not depend on what the process solved before (same bits on any worker), while a
    warm basis is faster but changes the last bits with the solve history.

    The column-wise layout of the constraint matrix ``[E - gamma P^T; cost^T]`` is fixed by the
    structure, so it is computed once; a re-solve only scatters the new coefficients into it.
    """

    def __init__(self, cmdp: CMDP):
        import highspy

        self.highspy = highspy
        self.solver = highs()
        self.solver.setOptionValue("solver", "simplex")
        self.basis = None
        n_states, n_actions, n_constraints = cmdp.n_states, cmdp.n_actions, cmdp.n_constraints
        n_pairs = n_states * n_actions
        _, self.rows, self.cols = _flow_pattern(cmdp)
        pairs = np.arange(n_pairs)
        # entry order: E (ones), -gamma P^T (pattern), costs (K x SA, dense)
        entry_rows = np.concatenate([pairs // n_actions, self.rows,
                                     n_states + np.repeat(np.arange(n_constraints), n_pairs)])
        entry_cols = np.concatenate([pairs, self.cols, np.tile(pairs, n_constraints)])
        # HiGHS wants column-major order without duplicates (E and P^T meet on self-loops).
        cells, self.position = np.unique(entry_cols * (n_states + n_constraints) + entry_rows,
                                         return_inverse=True)
        self.n_cells = cells.size
        self.index = (cells % (n_states + n_constraints)).astype(np.int32)
        self.start = np.searchsorted(cells // (n_states + n_constraints),
                                     np.arange(n_pairs + 1)).astype(np.int32)

    def solve(self, cmdp: CMDP, objective: np.ndarray, with_budget: bool = True,
              warm_start: bool = False):
        highspy = self.highspy
        n_pairs = cmdp.n_states * cmdp.n_actions
        entries = np.concatenate([np.ones(n_pairs), -_gamma_p_values(cmdp, self.rows, self.cols),
                                  cmdp.costs.reshape(n_pairs, -1).T.reshape(-1)])
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_pairs, cmdp.n_states + cmdp.n_constraints
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.col_cost_ = objective
        lp.col_lower_ = np.zeros(n_pairs)
        lp.col_upper_ = np.full(n_pairs, highspy.kHighsInf)
        budgets = cmdp.budgets if with_budget else np.full(cmdp.n_constraints, highspy.kHighsInf)
        lp.row_lower_ = np.concatenate([cmdp.rho, np.full(cmdp.n_constraints, -highspy.kHighsInf)])
        lp.row_upper_ = np.concatenate([cmdp.rho, budgets])
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = self.start
        lp.a_matrix_.index_ = self.index
        lp.a_matrix_.value_ = np.bincount(self.position, weights=entries, minlength=self.n_cells)
        self.solver.passModel(lp)
        if warm_start and self.basis is not None:
            self.solver.setBasis(self.basis)
        self.solver.run()
        status = self.solver.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return "infeasible", None, None, None, None
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS returned status {self.solver.modelStatusToString(status)!r}")
        if warm_start:
            self.basis = self.solver.getBasis()
        solution = self.solver.getSolution()
        row_dual = np.asarray(solution.row_dual, dtype=np.float64)
        return ("optimal", np.asarray(solution.col_value, dtype=np.float64),
                float(self.solver.getInfo().objective_function_value),
                row_dual[:cmdp.n_states], row_dual[cmdp.n_states:])


# Solver objects are not thread-safe: each thread keeps its own compiled models.
_local = threading.local()


def _model(backend: str, cmdp: CMDP):
    caches = _local.__dict__.setdefault("caches", {})
    cache = caches.setdefault(backend, _LRU())
    builder = _CvxpyOccupancyLP if backend == "cvxpy" else _HighsOccupancyLP
    return cache.get_or_build(_flow_pattern(cmdp)[0], lambda: builder(cmdp))


# --- public API ----------------------------------------------------------------------------


def solve(cmdp: CMDP, backend: str = "auto", solver: str = "HIGHS",
          warm_start: bool = False) -> Solution:
    """The constrained optimum of ``cmdp`` (maximise V_r subject to V_cost <= budget).

    Args:
        cmdp: the task (cost form, task units; dense or sparse ``P``).
        backend: ``"auto"`` (module docstring), ``"cvxpy"`` (compiled DPP problem, re-used across
            tasks of one structure), ``"highspy"`` (direct HiGHS; fastest for re-solves of small
            tasks) or ``"lagrangian"`` (one constraint; scales to 10^5 states).
        solver: with ``backend="cvxpy"``, ``"HIGHS"`` (vertex solutions) or ``"CLARABEL"``.
        warm_start: with ``backend="highspy"``, start from the previous optimal basis of the
            same structure (about 3x faster on the gridworld, but the last bits then depend on
            the solve history; the default cold start gives identical bits on every worker).

    Raises:
        InfeasibleCMDPError: no policy meets the budget; reports the smallest achievable cost.

    The returned policy is feasible by exact evaluation: simplex residuals on ill-conditioned
    tasks can leave its exact cost ~1e-8 above the budget, and then the LP is solved again with
    the budget lowered by twice the excess (a vertex again; reward lost ~ lambda times that),
    doubling the tightening while the excess persists.
    States the optimal occupancy never visits get the action that maximises the Lagrangian
    Q-value ``r - lambda . cost + gamma P V_lambda`` (so the policy stays sensible on tasks
    whose dynamics do reach them); their choice does not change the values on ``cmdp``.

    Examples
    --------
    >>> from safepce import tabular
    >>> task = tabular.gridworld(0.3)            # Section 6's gridworld, budget 1.5
    >>> solution = tabular.solve(task)
    >>> round(solution.reward_value, 4), round(solution.cost_value, 6)
    (51.9628, 1.5)
    >>> bool(tabular.evaluate(task, solution.policy).cost_value <= task.budget)
    True
    """
    backend = _resolve_backend(cmdp, backend)
    if backend == "lagrangian":
        return _solve_lagrangian(cmdp)
    solution = _solve_once(cmdp, backend, solver, warm_start)
    tightening = np.zeros(cmdp.n_constraints)
    for attempt in range(_POLISH_ATTEMPTS):
        excess = -np.minimum(np.atleast_1d(cmdp.budgets - np.atleast_1d(solution.cost_value)), 0)
        if not np.any(excess > 0):
            break
        # twice the excess; after _LINEAR_ATTEMPTS also double what did not suffice: a budget
        # moved by a few ulps can leave the LP's vertex (and so the exact cost) unchanged
        tightening = (tightening if attempt < _LINEAR_ATTEMPTS else 2 * tightening) + 2 * excess
        try:
            solution = _solve_once(cmdp.with_budget(
                cmdp.budgets - tightening if not cmdp.single_constraint
                else float(cmdp.budgets[0] - tightening[0])), backend, solver, warm_start)
        except InfeasibleCMDPError:
            break               # the budget is the minimum cost itself: keep the last solution
        exact = evaluate(cmdp, solution.policy)
        solution = replace(solution, cost_value=exact.cost_value, reward_value=exact.reward_value,
                           occupancy=exact.occupancy)
    if np.any(tightening > 0):
        logger.info("the LP's policy exceeded the budget by rounding; budget tightened by %s so "
                    "that its exact cost meets it", np.array2string(tightening, precision=3))
        solution = replace(solution, budget_tightening=float(tightening[0])
                           if cmdp.single_constraint else tightening)
    return solution


#: the smallest 1 - gamma an exact solve accepts: values scale as 1/(1 - gamma), and below it
#: HiGHS ends with status Unknown on random 6-state tasks (measured: at 1 - gamma = 1e-9 on one
#: seed of four, at 1e-10 on all four) while the Lagrangian route drifts by up to 10% from its
#: own 1e-9 answer; every backend refuses the same tasks
MIN_ONE_MINUS_GAMMA = 1e-8


def _resolve_backend(cmdp: CMDP, backend: str) -> str:
    if not isinstance(cmdp, CMDP):
        raise InvalidCMDPError("cmdp", "a tabular.CMDP", detail=f"got {type(cmdp).__name__}")
    if 1.0 - cmdp.gamma < MIN_ONE_MINUS_GAMMA:
        raise InvalidCMDPError(
            "gamma", f"1 - gamma >= {MIN_ONE_MINUS_GAMMA:g} for an exact solve",
            detail=f"got 1 - gamma = {1.0 - cmdp.gamma:.3g}; values scale as 1/(1 - gamma) and "
                   "no backend (LP or Lagrangian) solves such tasks to the toolkit's accuracy")
    if backend not in _BACKENDS:
        raise InvalidCMDPError("backend", f"one of {_BACKENDS}", detail=f"got {backend!r}")
    if backend == "lagrangian" and not cmdp.single_constraint:
        raise InvalidCMDPError("backend", "'lagrangian' only for one constraint (cost (S, A))",
                               detail=f"the task has K = {cmdp.n_constraints} constraints")
    if backend != "auto":
        return backend
    if not cmdp.is_sparse and cmdp.n_states * cmdp.n_actions <= _AUTO_LP_PAIRS:
        return "highspy"
    return "lagrangian" if cmdp.single_constraint else "highspy"


def solve_sequence(tasks, backend: str = "auto") -> list[Solution]:
    """:func:`solve` on each of ``tasks`` in order; where the Lagrangian route is used, each
    solve starts from the previous task's optimal actions and multiplier (exact all the same:
    the search certifies its answer), which pays on a family swept in parameter order."""
    solutions, warm = [], None
    for task in tasks:
        if _resolve_backend(task, backend) == "lagrangian":
            solution = _solve_lagrangian(task, warm)
            warm = (np.argmax(solution.policy, axis=1), solution.multipliers)
        else:
            solution = solve(task, backend=backend)
        solutions.append(solution)
    return solutions


def _solve_lagrangian(cmdp: CMDP, warm: tuple | None = None) -> Solution:
    """The vertex optimum by :func:`safepce.tabular.lagrangian.solve_lagrangian`, exactly
    feasible."""
    from .lagrangian import solve_lagrangian

    result = solve_lagrangian(cmdp, warm=warm)
    if isinstance(result, float):
        raise InfeasibleCMDPError(cmdp.budget, result)
    exact = result.evaluation if result.evaluation is not None else evaluate(cmdp,
                                                                              result.policy)
    return Solution(policy=result.policy, reward_value=exact.reward_value,
                    cost_value=exact.cost_value, multipliers=result.multiplier,
                    lagrangian_values=result.lagrangian_values, occupancy=exact.occupancy,
                    lp_value=exact.reward_value, status="optimal", backend="lagrangian")


def _solve_once(cmdp: CMDP, backend: str, solver: str, warm_start: bool) -> Solution:
    """One LP solve and policy extraction, values by exact evaluation."""
    if not isinstance(cmdp, CMDP):
        raise InvalidCMDPError("cmdp", "a tabular.CMDP", detail=f"got {type(cmdp).__name__}")
    if backend not in _BACKENDS:
        raise InvalidCMDPError("backend", f"one of {_BACKENDS}", detail=f"got {backend!r}")
    if backend == "cvxpy":
        if solver not in ("HIGHS", "CLARABEL"):
            raise InvalidCMDPError("solver", "'HIGHS' or 'CLARABEL'", detail=f"got {solver!r}")
        status, q, lp_value, flow_dual, budget_dual = _model("cvxpy", cmdp).solve(cmdp, solver)
        label = f"cvxpy/{solver}"
    else:
        status, q, lp_value, flow_dual, budget_dual = _model("highspy", cmdp).solve(
            cmdp, cmdp.r.reshape(-1), warm_start=warm_start)
        label = "highspy"
    if status == "infeasible":
        raise InfeasibleCMDPError(cmdp.budget, minimum_cost(cmdp))

    # Duals' signs differ between interfaces; fix them by strong duality and dual feasibility.
    multipliers = np.abs(budget_dual)
    if abs(cmdp.rho @ flow_dual + cmdp.budgets @ multipliers - lp_value) > abs(
            -cmdp.rho @ flow_dual + cmdp.budgets @ multipliers - lp_value):
        flow_dual = -flow_dual
    policy = occupancy_to_policy(cmdp, q.reshape(cmdp.n_states, cmdp.n_actions),
                                 multipliers, flow_dual)
    exact = evaluate(cmdp, policy)
    return Solution(
        policy=policy,
        reward_value=exact.reward_value,
        cost_value=exact.cost_value,
        multipliers=float(multipliers[0]) if cmdp.single_constraint else multipliers,
        lagrangian_values=flow_dual,
        occupancy=exact.occupancy,
        lp_value=lp_value,
        status=status,
        backend=label,
    )


def occupancy_to_policy(cmdp: CMDP, q: np.ndarray, multipliers: np.ndarray,
                        lagrangian_values: np.ndarray) -> np.ndarray:
    """pi(a|s) = q(s,a) / sum_a q(s,a) on visited states; Lagrangian-greedy on the others."""
    q = np.clip(q, 0.0, None)
    totals = q.sum(axis=1, keepdims=True)
    q = np.where(q > _SUPPORT_TOLERANCE * totals, q, 0.0)
    totals = q.sum(axis=1, keepdims=True)
    visited = totals[:, 0] > 0
    policy = np.zeros_like(q)
    policy[visited] = q[visited] / totals[visited]
    if not visited.all():
        lagrangian_q = (cmdp.r - cmdp.costs @ multipliers
                        + cmdp.discounted_next_values(lagrangian_values))
        greedy = np.argmax(lagrangian_q[~visited], axis=1)
        policy[np.flatnonzero(~visited), greedy] = 1.0
    return policy


def minimum_cost(cmdp: CMDP) -> float | np.ndarray:
    """Smallest achievable discounted cost of each constraint on its own (task units)."""
    if cmdp.single_constraint and _resolve_backend(cmdp, "auto") == "lagrangian":
        from .lagrangian import minimum_cost_policy

        return minimum_cost_policy(cmdp)[1]
    model = _HighsOccupancyLP(cmdp)
    minima = np.empty(cmdp.n_constraints)
    for j in range(cmdp.n_constraints):
        _, _, value, _, _ = model.solve(cmdp, -cmdp.costs[..., j].reshape(-1), with_budget=False)
        minima[j] = -value
    return float(minima[0]) if cmdp.single_constraint else minima
