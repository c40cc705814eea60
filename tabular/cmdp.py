"""Finite discounted CMDPs: the data model, its validation, and the one place where units change.

Conventions (Section 2 of the paper):

* A task is stored in the experiment's *cost form*: reward ``r(s, a)``, non-negative per-step costs
  ``cost(s, a, j)`` and budgets ``b_j``; a policy is feasible iff ``V_cost_j <= b_j`` for every j.
  Values are plain discounted sums ``E[sum_t gamma^t x(s_t, a_t)]`` from ``s_0 ~ rho``.
* The paper states every theorem in its *utility form*: reward in [0, 1], utility in [-1, 1],
  feasible iff ``V_c >= 0``. :meth:`CMDP.utility_form` is the only conversion between the two:
  ``c_j = b_j (1 - gamma) - cost_j`` (so ``V_c = b - V_cost``, the slack), then reward and each
  utility are divided by their largest absolute entry (feasibility is unchanged by the scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sparse

from .errors import InputError

ROW_SUM_TOLERANCE = 1e-9


class _FieldError(InputError):
    """A ValueError that names the offending field, its index and the expected property.

    Attributes ``field``, ``index`` (or None) and ``expected`` let callers act on it.
    """

    def __init__(self, field: str, expected: str, index: tuple | int | None = None,
                 detail: str = ""):
        self.field = field
        self.index = index
        self.expected = expected
        where = field if index is None else f"{field}[{_format_index(index)}]"
        message = f"{where}: expected {expected}"
        if detail:
            message += f"; {detail}"
        super().__init__(message)


class InvalidCMDPError(_FieldError):
    """A CMDP field has the wrong shape, a non-finite entry, or violates its expected property."""


class InvalidPolicyError(_FieldError):
    """A policy is not a row-stochastic (S, A) array, or a mixture is malformed."""


def _format_index(index: tuple | int) -> str:
    if isinstance(index, tuple):
        return ", ".join(str(int(i)) if not isinstance(i, str) else i for i in index)
    return str(int(index))


def _as_float_array(value, name: str, ndim: tuple[int, ...], error=InvalidCMDPError) -> np.ndarray:
    if np.iscomplexobj(value):
        imaginary = np.imag(np.asarray(value))
        index = tuple(int(i) for i in np.argwhere(imaginary != 0)[0]) if np.any(
            imaginary != 0) and imaginary.ndim else None
        raise error(name, "real entries", index=index,
                    detail=f"got a complex array (dtype {np.asarray(value).dtype})")
    try:
        array = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise error(name, "a numeric array", detail=str(exc)) from None
    if array.ndim not in ndim:
        dims = " or ".join(f"{d}-D" for d in ndim)
        raise error(name, f"a {dims} array", detail=f"got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0]) if array.ndim else None
        value = array[index] if index is not None else array
        raise error(name, "finite entries (no NaN or inf)", index=index, detail=f"found {value}")
    return array


def _check_distributions(array: np.ndarray, name: str, error=InvalidCMDPError) -> None:
    """Check that the last axis of ``array`` holds probability vectors."""
    negative = np.argwhere(array < 0)
    if negative.size:
        index = tuple(int(i) for i in negative[0])
        raise error(name, "non-negative probabilities", index=index,
                    detail=f"found {float(array[index])!r}")
    sums = np.atleast_1d(array.sum(axis=-1))
    off = np.argwhere(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if off.size:
        row = tuple(int(i) for i in off[0]) if array.ndim > 1 else ()
        index = (*row, ":") if row else None
        raise error(name, f"rows summing to 1 (tolerance {ROW_SUM_TOLERANCE:g})", index=index,
                    detail=f"{'this row' if row else 'it'} sums to {float(sums[tuple(off[0])])!r}")


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _frozen_csr(matrix: sparse.csr_array) -> sparse.csr_array:
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.setflags(write=False)
    return matrix


def _sparse_kernel(value, reward_shape: tuple[int, ...]) -> sparse.csr_array:
    """Validate a sparse (S*A, S) kernel without densifying it: a float64 CSR copy with sorted
    indices, duplicates summed and explicit zeros dropped, rows summing to 1."""
    n_states, n_actions = reward_shape
    if value.ndim != 2 or value.shape != (n_states * n_actions, n_states) or n_states == 0:
        raise InvalidCMDPError("P", f"a sparse matrix of shape (S*A, S) = "
                               f"{(n_states * n_actions, n_states)} (S, A from r)",
                               detail=f"got shape {value.shape}")
    frozen = (isinstance(value, sparse.csr_array) and value.dtype == np.float64
              and not value.data.flags.writeable and not value.indices.flags.writeable
              and not value.indptr.flags.writeable and value.has_canonical_format)
    # a frozen canonical kernel (another task's, or a builder's) is shared, not copied: no one
    # can change it (S = 10^6 random tasks: 0.5 GB saved per task built from one)
    P = value if frozen else sparse.csr_array(value, dtype=np.float64, copy=True)
    P.sum_duplicates()
    if not np.all(np.isfinite(P.data)):
        k = int(np.flatnonzero(~np.isfinite(P.data))[0])
        row = int(np.searchsorted(P.indptr, k, side="right") - 1)
        raise InvalidCMDPError("P", "finite entries (no NaN or inf)",
                               index=(row // n_actions, row % n_actions, int(P.indices[k])),
                               detail=f"found {P.data[k]}")
    if np.any(P.data < 0):
        k = int(np.flatnonzero(P.data < 0)[0])
        row = int(np.searchsorted(P.indptr, k, side="right") - 1)
        raise InvalidCMDPError("P", "non-negative probabilities",
                               index=(row // n_actions, row % n_actions, int(P.indices[k])),
                               detail=f"found {float(P.data[k])!r}")
    if frozen and np.any(P.data == 0):
        P, frozen = sparse.csr_array(P, copy=True), False
    if not frozen:
        P.eliminate_zeros()
    sums = np.add.reduceat(P.data, P.indptr[:-1]) if P.nnz and np.all(np.diff(P.indptr)) \
        else np.asarray(P.sum(axis=1)).ravel()
    off = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if off.size:
        row = int(off[0])
        raise InvalidCMDPError("P", f"rows summing to 1 (tolerance {ROW_SUM_TOLERANCE:g})",
                               index=(row // n_actions, row % n_actions, ":"),
                               detail=f"this row sums to {float(sums[row])!r}")
    return _frozen_csr(P)


@dataclass(frozen=True, eq=False)
class CMDP:
    """A finite discounted constrained MDP in cost form (Section 2 of the paper).

    Args:
        P: transition kernel, shape (S, A, S) with ``P[s, a, s']`` = Pr(s' | s, a); or a
            ``scipy.sparse`` matrix of shape (S*A, S) whose row ``s*A + a`` is Pr(. | s, a),
            kept sparse (CSR) inside: construction, validation, :func:`safepce.tabular.evaluate`,
            :func:`safepce.tabular.evaluate_batch`, :func:`safepce.tabular.solve`, the simulator and
            the
            distance never densify it (see :attr:`is_sparse`, :attr:`transition_matrix`).
        r: reward, shape (S, A), task units.
        cost: non-negative per-step cost, shape (S, A) for one constraint or (S, A, K) for K.
        budget: scalar for one constraint, or shape (K,); feasible iff ``V_cost <= budget``.
        rho: initial-state distribution, shape (S,).
        gamma: discount factor in (0, 1).

    Arrays are copied to read-only float64 on construction. Raises :class:`InvalidCMDPError`
    naming the field, the offending index and the expected property.
    """

    P: np.ndarray
    r: np.ndarray
    cost: np.ndarray
    budget: np.ndarray | float
    rho: np.ndarray
    gamma: float

    def __post_init__(self) -> None:
        try:
            gamma = float(self.gamma)
        except (TypeError, ValueError):
            raise InvalidCMDPError("gamma", "a number in (0, 1)",
                                   detail=f"got {self.gamma!r}") from None
        if not (0.0 < gamma < 1.0) or not np.isfinite(gamma):
            raise InvalidCMDPError("gamma", "a number in (0, 1)", detail=f"got {gamma!r}")

        if sparse.issparse(self.P):
            r = _as_float_array(self.r, "r", (2,))
            P = _sparse_kernel(self.P, r.shape)
            n_states, n_actions = P.shape[1], r.shape[1]
        else:
            P = _as_float_array(self.P, "P", (3,))
            n_states, n_actions = P.shape[0], P.shape[1]
            if P.shape[2] != n_states or n_states == 0 or n_actions == 0:
                raise InvalidCMDPError("P", "shape (S, A, S) with S, A >= 1",
                                       detail=f"got shape {P.shape}")
            _check_distributions(P, "P")
            r = _as_float_array(self.r, "r", (2,))
        if r.shape != (n_states, n_actions):
            raise InvalidCMDPError("r", f"shape (S, A) = {(n_states, n_actions)}",
                                   detail=f"got shape {r.shape}")

        cost = _as_float_array(self.cost, "cost", (2, 3))
        if cost.shape[:2] != (n_states, n_actions):
            raise InvalidCMDPError("cost", f"shape (S, A) = {(n_states, n_actions)} or (S, A, K)",
                                   detail=f"got shape {cost.shape}")
        negative = np.argwhere(cost < 0)
        if negative.size:
            index = tuple(negative[0])
            raise InvalidCMDPError("cost", "non-negative costs", index=index,
                                   detail=f"found {float(cost[index])!r}")
        n_constraints = 1 if cost.ndim == 2 else cost.shape[2]
        if n_constraints == 0:
            raise InvalidCMDPError("cost", "at least one constraint (K >= 1)",
                                   detail=f"got shape {cost.shape}")

        budget = _as_float_array(self.budget, "budget", (0, 1))
        if cost.ndim == 2 and budget.ndim != 0:
            raise InvalidCMDPError("budget", "a scalar when cost has shape (S, A)",
                                   detail=f"got shape {budget.shape}")
        if cost.ndim == 3 and budget.shape != (n_constraints,):
            raise InvalidCMDPError("budget", f"shape (K,) = ({n_constraints},) to match cost",
                                   detail=f"got shape {budget.shape}")

        rho = _as_float_array(self.rho, "rho", (1,))
        if rho.shape != (n_states,):
            raise InvalidCMDPError("rho", f"shape (S,) = ({n_states},)",
                                   detail=f"got shape {rho.shape}")
        _check_distributions(rho, "rho")

        object.__setattr__(self, "P", P if sparse.issparse(P) else _frozen(P))
        object.__setattr__(self, "r", _frozen(r))
        object.__setattr__(self, "cost", _frozen(cost))
        object.__setattr__(self, "budget", _frozen(budget) if budget.ndim else float(budget))
        object.__setattr__(self, "rho", _frozen(rho))
        object.__setattr__(self, "gamma", gamma)

    # --- shapes -------------------------------------------------------------------------------

    @property
    def n_states(self) -> int:
        return self.r.shape[0]

    @property
    def n_actions(self) -> int:
        return self.r.shape[1]

    @property
    def is_sparse(self) -> bool:
        """True when ``P`` is stored as a sparse (S*A, S) CSR matrix."""
        return sparse.issparse(self.P)

    @cached_property
    def transition_matrix(self) -> sparse.csr_array:
        """The kernel as a CSR matrix of shape (S*A, S), row ``s*A + a`` (either storage)."""
        if self.is_sparse:
            return self.P
        return _frozen_csr(sparse.csr_array(self.P.reshape(self.n_states * self.n_actions,
                                                           self.n_states)))

    @cached_property
    def dense_P(self) -> np.ndarray:
        """The kernel as a dense (S, A, S) array (a copy of ``S^2 A`` floats for a sparse task:
        for the small-task tools that index ``P[s, a, s']``)."""
        if not self.is_sparse:
            return self.P
        return _frozen(self.P.toarray().reshape(self.n_states, self.n_actions, self.n_states))

    @property
    def n_constraints(self) -> int:
        return 1 if self.cost.ndim == 2 else self.cost.shape[2]

    @property
    def single_constraint(self) -> bool:
        """True when ``cost`` is (S, A) and ``budget`` a scalar; values are then scalars too."""
        return self.cost.ndim == 2

    @cached_property
    def costs(self) -> np.ndarray:
        """Costs as an (S, A, K) array whatever the stored shape."""
        return _frozen(self.cost.reshape(self.n_states, self.n_actions, self.n_constraints))

    @cached_property
    def budgets(self) -> np.ndarray:
        """Budgets as a (K,) array whatever the stored shape."""
        return _frozen(np.atleast_1d(np.asarray(self.budget, dtype=np.float64)).copy())

    def next_values(self, values: np.ndarray) -> np.ndarray:
        """``sum_s' P(s'|s, a) values[s', ...]`` of shape (S, A, ...): the expected next-state
        value of every pair (dense ``P @ values``; one sparse product for a sparse task)."""
        values = np.asarray(values)
        if not self.is_sparse:
            return self.P @ values
        flat = values.reshape(self.n_states, -1)
        return (self.P @ flat).reshape(self.n_states, self.n_actions, *values.shape[1:])

    def discounted_next_values(self, values: np.ndarray) -> np.ndarray:
        """``gamma sum_s' P(s'|s, a) values[s', ...]``, (S, A, ...). For a dense task computed as
        ``(gamma P) @ values``, the order every Q-value in safepce used before sparse tasks
        existed, so dense results keep their last bits."""
        if not self.is_sparse:
            return self.gamma * self.P @ np.asarray(values)
        return self.gamma * self.next_values(values)

    # --- the paper's units (its Section 2) -------------------------------------------------------

    @cached_property
    def utility_form(self) -> UtilityForm:
        """This task in the paper's normalised utility form (the only unit conversion)."""
        return UtilityForm.of(self)

    def with_budget(self, budget) -> CMDP:
        """The same task with another budget."""
        return CMDP(self.P, self.r, self.cost, budget, self.rho, self.gamma)


@dataclass(frozen=True, eq=False)
class UtilityForm:
    """A cost-form CMDP restated in the paper's normalised utility form (Section 2 of the paper).

    ``reward = r / reward_scale`` lies in [0, 1] and ``utility[..., j] = (b_j (1 - gamma) -
    cost[..., j]) / utility_scale[j]`` in [-1, 1]; a policy is feasible iff every normalised
    utility value is >= 0. Value conversions between units go through the methods below.
    """

    reward: np.ndarray
    utility: np.ndarray
    reward_scale: float
    utility_scale: np.ndarray
    budgets: np.ndarray
    gamma: float

    @classmethod
    def of(cls, cmdp: CMDP) -> UtilityForm:
        if np.any(cmdp.r < 0):
            index = tuple(np.argwhere(cmdp.r < 0)[0])
            raise InvalidCMDPError("r", "non-negative rewards for the paper's form (r in [0, 1])",
                                   index=index, detail=f"found {float(cmdp.r[index])!r}")
        raw_utility = cmdp.budgets * (1.0 - cmdp.gamma) - cmdp.costs
        reward_scale = float(np.max(np.abs(cmdp.r))) or 1.0
        utility_scale = np.max(np.abs(raw_utility), axis=(0, 1))
        utility_scale = np.where(utility_scale > 0, utility_scale, 1.0)
        return cls(
            reward=_frozen(cmdp.r / reward_scale),
            utility=_frozen(raw_utility / utility_scale),
            reward_scale=reward_scale,
            utility_scale=_frozen(utility_scale),
            budgets=cmdp.budgets,
            gamma=cmdp.gamma,
        )

    def reward_value_to_paper(self, reward_value):
        """Task-unit reward value -> normalised reward value."""
        return np.asarray(reward_value) / self.reward_scale

    def reward_value_to_task(self, value):
        """Normalised reward value -> task-unit reward value."""
        return np.asarray(value) * self.reward_scale

    def cost_value_to_paper(self, cost_value):
        """Task-unit cost value(s) -> normalised utility value(s) ``(b - V_cost) / scale``.

        With one constraint the input may be of any shape; with K it must end in an axis of K.
        """
        cost_value = np.asarray(cost_value, dtype=np.float64)
        if self.budgets.size == 1:
            return (self.budgets[0] - cost_value) / self.utility_scale[0]
        return (self.budgets - cost_value) / self.utility_scale

    def utility_value_to_cost(self, utility_value):
        """Normalised utility value(s) -> task-unit cost value(s) ``b - scale * V_c``."""
        utility_value = np.asarray(utility_value, dtype=np.float64)
        if self.budgets.size == 1:
            return self.budgets[0] - utility_value * self.utility_scale[0]
        return self.budgets - utility_value * self.utility_scale
