"""Exact solves of the discounted linear systems of sparse CMDPs, with a certified error bound.

Policy evaluation solves ``(I - gamma P_pi) x = b`` (state values) and ``(I - gamma P_pi)^T y =
rho`` (discounted visits), where ``P_pi`` is row-stochastic. Because ``||gamma P_pi||_inf =
gamma``, the inverse is bounded, ``||(I - gamma P_pi)^{-1}||_inf <= 1 / (1 - gamma)`` and likewise
``||(I - gamma P_pi)^{-T}||_1 <= 1 / (1 - gamma)``, so any approximate solution carries the
a-posteriori bound

    ||x - x*||_inf <= ||b - (I - gamma P_pi) x||_inf / (1 - gamma)
    ||y - y*||_1   <= ||rho - (I - gamma P_pi)^T y||_1 / (1 - gamma),

computed from its residual. A solve is accepted only when that bound is below ``tolerance``
(relative to ``||b|| / (1 - gamma)``, the size of the solution), so "exact" here means exact to a
bound that is checked, not assumed.

Method, chosen by measurement (random kernels with 10 successors per pair, A = 4, gamma 0.9; CPU
seconds on one core): sparse LU (SuperLU with COLAMD ordering) fills in like a dense matrix on
expander-like kernels (S = 10^4: 6.1e7 factor entries, 66 s), while restarted GMRES reaches a
relative residual of 1e-13 in 0.006 s at S = 10^4 and 0.15-0.25 s at S = 10^5 (compiled here,
:func:`_gmres`; scipy's spends ~5 ms of Python per call; BiCGSTAB breaks down on near-uniform
policies). On grid-like kernels (local transitions) LU fill-in is small, and GMRES needs
hundreds of iterations (grid: slow mixing): LU is 2-7x faster there (50x50 to 316x316
gridworld). So the route of a sparsity pattern is decided once from its structure
(:func:`_route`): banded kernels (grids numbered row by row) go to sparse LU, and the
deterministic policies of one solve share one factorisation through low-rank updates
(:class:`PolicySystems`); other systems are first solved by Bellman backups (values: with
MacQueen's constant shift, :meth:`DiscountedSystem._backups`; visits: from a start of the right
total, :meth:`DiscountedSystem._visit_backups`), which on random kernels contract as fast per
product as GMRES without its orthogonalisation; where they stall, by GMRES(20) (3 restarts, one
refinement) from where they stopped; and one that does not certify is factorised by sparse LU,
reused for every further right-hand side of the same system (reward and cost values, the
transposed visits).
"""

from __future__ import annotations

import logging
import weakref

import numba
import numpy as np
import scipy.linalg
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg

logger = logging.getLogger(__name__)

#: a solve is accepted when its certified error is below this fraction of the solution's scale
TOLERANCE = 1e-11
_KRYLOV_ITERATIONS = 3           # restart cycles of GMRES per refinement step
_RESTART = 20
_REFINEMENTS = 3
_KRYLOV_REFINEMENTS = 1
#: at most this many Bellman backups before GMRES takes over (DiscountedSystem._backups)
_BACKUPS = 100
#: "auto": backups then GMRES first, sparse LU if they do not certify; "krylov" (backups and
#: GMRES) / "lu": that method only
#: (an uncertified "krylov" solve raises)
METHODS = ("auto", "krylov", "lu")


def policy_rows(n_actions: int, actions: np.ndarray) -> np.ndarray:
    """Rows ``s A + a_s`` of the (S A, S) kernel taken by deterministic ``actions`` (S,)."""
    return np.arange(actions.size) * n_actions + np.asarray(actions, dtype=np.int64)


def _certificate_norm(transpose: bool):
    """The norm a solve is certified in: inf-norm for values, 1-norm for visits (module
    docstring)."""
    return (lambda v: np.abs(v).sum()) if transpose else (lambda v: np.abs(v).max())


class DiscountedSystem:
    """``M = I - gamma P_pi`` for one sparse row-stochastic ``P_pi`` (S x S), solved exactly to a
    certified bound (module docstring); the factorisation, once made, is reused.

    ``P_pi`` is never formed for GMRES: row s of it is ``sum_j w_j K[r_j]`` over the entries j
    of ``pptr[s]:pptr[s+1]`` (kernel rows ``prows`` with weights ``pweights``) of a CSR kernel
    ``K``, so a policy's system on a task's (S A, S) kernel costs no copy of it
    (:meth:`for_policy`, :meth:`for_actions`); ``DiscountedSystem(P_pi, gamma)`` takes an
    explicit (S, S) matrix (identity rows). The explicit matrix is built only for sparse LU.
    """

    def __init__(self, P_pi: sparse.csr_array | None, gamma: float, tolerance: float = TOLERANCE,
                 method: str = "auto", owner=None, operator: tuple | None = None):
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}; got {method!r}")
        self.requested = method
        self.owner = owner
        self.gamma = float(gamma)
        self.tolerance = float(tolerance)
        if operator is None:
            P_pi = sparse.csr_array(P_pi)
            n = P_pi.shape[0]
            operator = (P_pi, np.arange(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                        np.zeros(0))
        self.kernel, self.pptr, self.prows, self.pweights = operator
        self.n_states = self.pptr.size - 1
        self._arrays = unsigned_arrays(self.kernel)
        self._matrix = None
        self._lu = None
        #: which method certified the last solve ("backups", "krylov" or "lu")
        self.method = ""

    @classmethod
    def for_actions(cls, task, actions: np.ndarray, **options) -> DiscountedSystem:
        """The system of a deterministic policy (``actions`` (S,)) on ``task``'s kernel: its rows
        copied into one (S, S) matrix (contiguous rows: GMRES's products run 1.5x faster than
        through the task's (S A, S) kernel, for S A x successors more memory)."""
        rows = policy_rows(task.n_actions, actions)
        return cls(task.transition_matrix[rows], task.gamma, **options)

    @classmethod
    def for_policy(cls, task, policy: np.ndarray, **options) -> DiscountedSystem:
        """The system of a stochastic ``policy`` (S, A) on ``task``'s kernel."""
        n, a = policy.shape
        states, actions = np.nonzero(policy)
        pptr = np.concatenate([[0], np.cumsum(np.bincount(states, minlength=n))])
        return cls(None, task.gamma, operator=(task.transition_matrix, pptr.astype(np.int64),
                                               (states * a + actions).astype(np.int64),
                                               policy[states, actions].astype(np.float64)),
                   **options)

    @property
    def matrix(self) -> sparse.csr_array:
        """``I - gamma P_pi`` as an explicit CSR matrix (built on first use)."""
        if self._matrix is None:
            if self.prows.size == 0:
                P_pi = self.kernel
            else:
                selector = sparse.csr_array((self.pweights, self.prows, self.pptr),
                                            shape=(self.n_states, self.kernel.shape[0]))
                P_pi = sparse.csr_array(selector @ self.kernel)
            self._matrix = sparse.csr_array(sparse.eye_array(self.n_states, format="csr")
                                            - self.gamma * P_pi)
        return self._matrix

    def apply(self, v: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``M v`` (``M^T v`` when ``transpose``), matrix-free."""
        out = np.empty(self.n_states)
        _operator_matvec(*self._arrays, self.pptr, self.prows, self.pweights, self.gamma,
                         transpose, np.ascontiguousarray(v, dtype=np.float64), out)
        return out

    def solve(self, b: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """x with ``M x = b`` (b of shape (S,) or (S, m)); ``||x - x*||_inf`` is certified.
        ``guess`` (same shape as b) starts the iteration (e.g. the previous policy's values)."""
        return self._solve(b, transpose=False, guess=guess)

    def solve_transposed(self, b: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """y with ``M^T y = b``; ``||y - y*||_1`` is certified."""
        return self._solve(b, transpose=True, guess=guess)

    def _solve(self, b: np.ndarray, transpose: bool, guess: np.ndarray | None = None
               ) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        if b.ndim == 2:
            return np.stack([self._solve(b[:, j], transpose,
                                         None if guess is None else guess[:, j])
                             for j in range(b.shape[1])], axis=1)
        if self._lu is None and self.requested != "lu":
            x, certified = (self._visit_backups if transpose else self._backups)(b, guess)
            if certified:
                self.method = "backups"
                return x
            guess = x
        norm = _certificate_norm(transpose)
        scale = norm(b)
        if scale == 0:
            return np.zeros_like(b)
        allowed = self.tolerance * scale
        if self._lu is None and self.requested != "lu":
            x = np.zeros_like(b) if guess is None else np.array(guess, dtype=np.float64)
            for _ in range(_KRYLOV_REFINEMENTS + 1):
                residual = b - self.apply(x, transpose)
                if norm(residual) <= allowed:
                    self.method = "krylov"
                    return x
                step = np.zeros_like(b)
                # stop where the certificate is met with room: the 2-norm bounds the inf-norm,
                # and sqrt(S) times it the 1-norm (no need to shrink a warm start's small
                # residual by 13 more orders)
                target = 0.25 * allowed / (np.sqrt(b.size) if transpose else 1.0)
                _gmres(*self._arrays, self.pptr, self.prows, self.pweights, self.gamma,
                       transpose, residual, step, _RESTART, _KRYLOV_ITERATIONS,
                       max(1e-13 * np.sqrt(residual @ residual), target))
                if not np.all(np.isfinite(step)):
                    break
                x = x + step
            if norm(b - self.apply(x, transpose)) <= allowed:
                self.method = "krylov"
                return x
            if self.requested == "krylov":
                raise ArithmeticError("GMRES did not certify the solve; use method 'auto' or 'lu'")
        if self._lu is None:
            if self.requested != "lu":
                logger.info("GMRES did not certify a solve of %d states to %.1e; factorising "
                            "by sparse LU (reused for this system and, from now on, tried "
                            "first for its sparsity pattern)", self.n_states, self.tolerance)
            else:
                logger.debug("sparse LU of %d states", self.n_states)
            if self.owner is not None and _pattern(self.owner) not in _preference:
                # the route of a pattern is its probe's (see _route), never changed by a later
                # system: that would make answers depend on what the process solved before
                _preference[_pattern(self.owner)] = "lu"
            # I - gamma P_pi is strictly diagonally dominant (row sums of gamma P_pi = gamma),
            # so elimination needs no pivoting; the symmetric-pattern ordering fills in least
            # on grids (50x50: 7.2e4 factor entries, 3.2 ms, against COLAMD's 1.2e5, 4.4 ms)
            self._lu = sparse_linalg.splu(sparse.csc_array(self.matrix),
                                          permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                          options={"SymmetricMode": True})
        x = self._lu.solve(b, trans="T" if transpose else "N")
        for _ in range(_REFINEMENTS):
            residual = b - self.apply(x, transpose)
            if norm(residual) <= allowed:
                break
            x = x + self._lu.solve(residual, trans="T" if transpose else "N")
        self.method = "lu"
        return x

    def _backups(self, b: np.ndarray, guess: np.ndarray | None) -> tuple[np.ndarray, bool]:
        """``x`` with ``M x = b`` (b: (S,)) by Bellman backups ``x <- b + gamma P_pi x``,
        certified by the residual after the best constant shift: ``P_pi 1 = 1`` gives
        ``M (x + c 1) = M x + (1 - gamma) c 1``, so the shift removes the residual's slowly
        contracting constant part (the eigenvalue gamma of ``gamma P_pi``) and leaves
        ``(max r - min r) / 2`` (the extrapolation of MacQueen 1966; Puterman 1994, Sec. 6.6).
        The rest contracts like gamma times P_pi's second eigenvalue, ~0.4 per backup on random
        kernels (S = 10^6: 32 backups to 1e-12, 0.70 s, against 0.96-1.16 s for GMRES(10) or
        (20), which orthogonalises and whose best polynomial on this spectrum, a disk around 0,
        is the backups' own). Returns (x, certified): certified when the residual, recomputed
        at the shifted ``x``, meets the tolerance; else ``x`` is a start for GMRES, returned
        when the residual shrinks less than 4x over 4 backups (slow mixing: grids) or after
        ``_BACKUPS`` backups."""
        allowed = self.tolerance * np.abs(b).max()
        if allowed == 0:
            return np.zeros_like(b), True
        x = np.zeros_like(b) if guess is None else np.array(guess, dtype=np.float64)
        args = (*self._arrays, self.pptr, self.prows, self.pweights, self.gamma, b)
        last = [0.0, 0.0]

        def span(x, y):
            last[:] = _backup_span(*args, x, y)
            return last[1] - last[0]

        x, certified = _until_certified(span, x, allowed)
        x += (last[1] + last[0]) / (2 * (1 - self.gamma))
        if not certified:
            return x, False
        low, high = _backup_span(*args, x, np.empty_like(x))
        return x, max(-low, high) <= allowed

    def _visit_backups(self, b: np.ndarray, guess: np.ndarray | None
                       ) -> tuple[np.ndarray, bool]:
        """``y`` with ``M^T y = b`` (visits) by backups ``y <- b + gamma P_pi^T y`` from a start
        of the right total: ``1^T M^T y = (1 - gamma) 1^T y`` fixes ``1^T y* = 1^T b / (1 -
        gamma)``, and the backups keep a start's total, so its error has no part along the
        stationary distribution (the only eigenvector of ``P_pi^T`` whose entries do not sum
        to 0; the mode that contracts like gamma) and contracts like the values' residual
        in :meth:`_backups` (S = 10^6: 0.46 s against 0.64 s for GMRES). The start is
        ``guess`` scaled to that total (``b / (1 - gamma)`` without one). Certified by the
        1-norm residual of the returned ``y``; handed to GMRES as in :meth:`_backups`."""
        allowed = self.tolerance * np.abs(b).sum()
        if allowed == 0:
            return np.zeros_like(b), True
        total = b.sum() / (1 - self.gamma)
        y = None if guess is None else np.array(guess, dtype=np.float64)
        if y is None or not y.sum() > 0 or not np.all(np.isfinite(y)):
            y = b / (1 - self.gamma)
        else:
            y *= total / y.sum()
        args = (*self._arrays, self.pptr, self.prows, self.pweights, self.gamma, b)
        return _until_certified(lambda y, out: _backup_transposed(*args, y, out), y, allowed)

    def error_bound(self, x: np.ndarray, b: np.ndarray, transpose: bool = False) -> float:
        """The certified bound on ``||x - x*||`` (inf-norm; 1-norm when ``transpose``)."""
        x, b = np.asarray(x, dtype=np.float64), np.asarray(b, dtype=np.float64)
        columns = [(x, b)] if x.ndim == 1 else list(zip(x.T, b.T, strict=True))
        sizes = [np.abs(bj - self.apply(xj, transpose)).sum() if transpose
                 else np.abs(bj - self.apply(xj, transpose)).max() for xj, bj in columns]
        return float(max(sizes) / (1.0 - self.gamma))


def _until_certified(sweep, x: np.ndarray, allowed: float) -> tuple[np.ndarray, bool]:
    """Backups ``sweep(x, out)`` (writes the next iterate into ``out``, returns the size of
    ``x``'s residual) from ``x`` until that size is <= ``allowed``: (that x, True); or (the last
    x swept, False) once the size shrinks less than 4x over 4 backups (slow mixing) or after
    ``_BACKUPS`` backups."""
    out, sizes = np.empty_like(x), []
    for backup in range(_BACKUPS):
        size = sweep(x, out)
        if size <= allowed:
            return x, True
        sizes.append(size)
        if backup >= 8 and size > 0.25 * sizes[-5]:
            break
        if backup < _BACKUPS - 1:
            x, out = out, x
    return x, False


def unsigned_arrays(kernel: sparse.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of a CSR matrix with unsigned index arrays (kept on the matrix
    object): numba's loops index twice as fast without the checks for negative indices
    (measured: 0.56 against 1.2 ms per product of a 10^5-state policy matrix)."""
    arrays = getattr(kernel, "_safepce_unsigned", None)
    if arrays is None or arrays[2] is not kernel.data:
        small = kernel.shape[1] < 2**32
        arrays = (kernel.indptr.astype(np.uint64),
                  kernel.indices.astype(np.uint32 if small else np.uint64), kernel.data)
        kernel._safepce_unsigned = arrays
    return arrays


@numba.njit(cache=True, inline="always")
def _row_times(indptr, indices, data, pptr, prows, pweights, s, v):
    """Row s of ``P_pi`` times ``v``; row s of P_pi is ``sum_j pweights[j] K[prows[j]]`` over j
    in ``pptr[s]:pptr[s+1]``, K the CSR kernel (K's own row s when ``prows`` is empty)."""
    total = 0.0
    if prows.size == 0:
        for k in range(indptr[s], indptr[s + 1]):
            total += data[k] * v[indices[k]]
    else:
        for j in range(pptr[s], pptr[s + 1]):
            row = prows[j]
            part = 0.0
            for k in range(indptr[row], indptr[row + 1]):
                part += data[k] * v[indices[k]]
            total += pweights[j] * part
    return total


@numba.njit(cache=True, inline="always")
def _add_transposed(indptr, indices, data, pptr, prows, pweights, scale, v, out):
    """out += scale P_pi^T v (``P_pi`` as in :func:`_row_times`)."""
    for s in range(pptr.size - 1):
        if prows.size == 0:
            weight = scale * v[s]
            for k in range(indptr[s], indptr[s + 1]):
                out[indices[k]] += data[k] * weight
        else:
            for j in range(pptr[s], pptr[s + 1]):
                row = prows[j]
                weight = scale * pweights[j] * v[s]
                for k in range(indptr[row], indptr[row + 1]):
                    out[indices[k]] += data[k] * weight


@numba.njit(cache=True)
def _operator_matvec(indptr, indices, data, pptr, prows, pweights, gamma, transpose, v, out):
    """out = M v (or M^T v) for ``M = I - gamma P_pi`` (``P_pi`` as in :func:`_row_times`)."""
    n = pptr.size - 1
    if not transpose:
        for s in range(n):
            out[s] = v[s] - gamma * _row_times(indptr, indices, data, pptr, prows, pweights, s, v)
        return
    for s in range(n):
        out[s] = v[s]
    _add_transposed(indptr, indices, data, pptr, prows, pweights, -gamma, v, out)


@numba.njit(cache=True)
def _backup_span(indptr, indices, data, pptr, prows, pweights, gamma, b, x, y):
    """One Bellman backup ``y = b + gamma P_pi x`` (``P_pi`` as in :func:`_operator_matvec`);
    returns the least and largest entry of ``y - x = b - (I - gamma P_pi) x``, the residual of
    ``x``."""
    low, high = np.inf, -np.inf
    for s in range(b.size):
        value = b[s] + gamma * _row_times(indptr, indices, data, pptr, prows, pweights, s, x)
        y[s] = value
        gap = value - x[s]
        low = min(low, gap)
        high = max(high, gap)
    return low, high


@numba.njit(cache=True)
def _backup_transposed(indptr, indices, data, pptr, prows, pweights, gamma, b, y, out):
    """One transposed backup ``out = b + gamma P_pi^T y`` (``P_pi`` as in
    :func:`_operator_matvec`); returns ``||out - y||_1 = ||b - (I - gamma P_pi)^T y||_1``, the
    residual of ``y``."""
    n = b.size
    for s in range(n):
        out[s] = b[s]
    _add_transposed(indptr, indices, data, pptr, prows, pweights, gamma, y, out)
    total = 0.0
    for s in range(n):
        total += abs(out[s] - y[s])
    return total


@numba.njit(cache=True)
def _gmres(indptr, indices, data, pptr, prows, pweights, gamma, transpose, b, x, restart,
           cycles, tolerance):
    """Restarted GMRES (modified Gram-Schmidt, Givens rotations; Saad, Iterative Methods for
    Sparse Linear Systems, Alg. 6.9) for the operator M of :func:`_operator_matvec` (its
    transpose when ``transpose``) on ``M x = b``, in place from ``x``,
    until the 2-norm residual is below ``tolerance`` or ``cycles`` restarts are spent. Compiled
    because scipy's version spends ~5 ms of Python per call on systems of 10^3 states. Its dot
    products are BLAS calls: run it with BLAS single-threaded (the command line does, see
    ``safepce.theory.sweep.tune_process``), or a second BLAS thread spins on every one of them (S =
    3e4:
    0.15 CPU-s per solve against 0.02)."""
    n = b.size
    basis = np.empty((restart + 1, n))
    hessenberg = np.zeros((restart + 1, restart))
    cosines, sines, rhs = np.zeros(restart), np.zeros(restart), np.zeros(restart + 1)
    work = np.empty(n)
    # explicit loops below: no temporary vectors (at 10^5 states each would be a fresh mapping)
    for _ in range(cycles):
        _operator_matvec(indptr, indices, data, pptr, prows, pweights, gamma, transpose, x,
                         work)
        for k in range(n):
            work[k] = b[k] - work[k]
        beta = np.sqrt(np.dot(work, work))
        if beta <= tolerance:
            return
        for k in range(n):
            basis[0, k] = work[k] / beta
        rhs[:] = 0.0
        rhs[0] = beta
        used = 0
        for j in range(restart):
            _operator_matvec(indptr, indices, data, pptr, prows, pweights, gamma, transpose,
                             basis[j], work)
            for i in range(j + 1):
                h = np.dot(work, basis[i])
                hessenberg[i, j] = h
                for k in range(n):
                    work[k] -= h * basis[i, k]
            norm = np.sqrt(np.dot(work, work))
            hessenberg[j + 1, j] = norm
            if norm > 0:
                for k in range(n):
                    basis[j + 1, k] = work[k] / norm
            for i in range(j):
                upper = cosines[i] * hessenberg[i, j] + sines[i] * hessenberg[i + 1, j]
                hessenberg[i + 1, j] = -sines[i] * hessenberg[i, j] + cosines[i] * hessenberg[
                    i + 1, j]
                hessenberg[i, j] = upper
            radius = np.hypot(hessenberg[j, j], hessenberg[j + 1, j])
            if radius == 0:
                break
            cosines[j], sines[j] = hessenberg[j, j] / radius, hessenberg[j + 1, j] / radius
            hessenberg[j, j], hessenberg[j + 1, j] = radius, 0.0
            rhs[j + 1] = -sines[j] * rhs[j]
            rhs[j] = cosines[j] * rhs[j]
            used = j + 1
            if abs(rhs[j + 1]) <= tolerance or norm == 0:
                break
        coefficients = np.zeros(used)
        for i in range(used - 1, -1, -1):
            total = rhs[i]
            for k in range(i + 1, used):
                total -= hessenberg[i, k] * coefficients[k]
            coefficients[i] = total / hessenberg[i, i]
        for i in range(used):
            for k in range(n):
                x[k] += coefficients[i] * basis[i, k]


_preference: dict = {}
_patterns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pattern(task) -> tuple:
    """A key of the task's kernel sparsity pattern and discount (tasks of one family share it,
    and with it how their systems are best solved)."""
    key = _patterns.get(task)
    if key is None:
        kernel = task.transition_matrix
        key = _patterns[task] = (kernel.shape, kernel.nnz, task.gamma,
                                 hash(kernel.indptr.tobytes()), hash(kernel.indices.tobytes()))
    return key


def system_for(task, P_pi: sparse.csr_array | None = None, *, policy: np.ndarray | None = None,
               actions: np.ndarray | None = None, tolerance: float = TOLERANCE
               ) -> DiscountedSystem:
    """The system on ``task`` (a :class:`safepce.tabular.CMDP`) of an explicit ``P_pi``, of a
    stochastic ``policy`` (S, A) or of deterministic ``actions`` (S,) (the last two
    matrix-free on the task's kernel), by the method that last certified on a task of the same
    sparsity pattern and discount: once GMRES has failed on one such system, LU directly.
    ``tolerance``: the certified relative accuracy (looser for inexact policy evaluation)."""
    options = {"method": _preference.get(_pattern(task), "auto"), "owner": task,
               "tolerance": tolerance}
    if actions is not None:
        return DiscountedSystem.for_actions(task, actions, **options)
    if policy is not None:
        if np.count_nonzero(policy) <= 2 * task.n_states:
            # near-deterministic: its rows copied (contiguous, faster products; at most twice a
            # deterministic policy's memory); else matrix-free on the kernel
            return DiscountedSystem(policy_kernel(task.transition_matrix, policy), task.gamma,
                                    **options)
        return DiscountedSystem.for_policy(task, policy, **options)
    return DiscountedSystem(P_pi, task.gamma, **options)


def policy_kernel(transition_matrix: sparse.csr_array, policy: np.ndarray) -> sparse.csr_array:
    """``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` from the (S*A, S) kernel, kept sparse."""
    n_states, n_actions = policy.shape
    rows = np.repeat(np.arange(n_states), n_actions)
    weights = policy.reshape(-1)
    keep = weights != 0
    pairs = np.arange(n_states * n_actions)
    selector = sparse.csr_array((weights[keep], (rows[keep], pairs[keep])),
                                shape=(n_states, n_states * n_actions))
    return sparse.csr_array(selector @ transition_matrix)


# --- deterministic policies of one task: one sparse LU reused through low-rank updates ----------


@numba.njit(cache=True)
def _residual(indptr, indices, data, rows, x, b, gamma, out):
    """out = b - (I - gamma P_a) x, where row s of P_a is row ``rows[s]`` of the (S A, S) CSR
    kernel (the deterministic policy's transitions)."""
    for s in range(rows.size):
        total = 0.0
        for k in range(indptr[rows[s]], indptr[rows[s] + 1]):
            total += data[k] * x[indices[k]]
        out[s] = b[s] - x[s] + gamma * total


@numba.njit(cache=True)
def _residual_transposed(indptr, indices, data, rows, y, b, gamma, out):
    """out = b - (I - gamma P_a)^T y."""
    for s in range(rows.size):
        out[s] = b[s] - y[s]
    for s in range(rows.size):
        weight = gamma * y[s]
        for k in range(indptr[rows[s]], indptr[rows[s] + 1]):
            out[indices[k]] += data[k] * weight


@numba.njit(cache=True)
def policy_backups(indptr, indices, data, rows, signal, gamma, values, sweeps):
    """``sweeps`` Bellman backups ``v <- signal + gamma P_a v`` of a deterministic policy, in
    place (Jacobi: each sweep from the last one's values); row s of P_a is row ``rows[s]`` of
    the (S A, S) CSR kernel."""
    last = values.copy()
    for _ in range(sweeps):
        for s in range(rows.size):
            total = 0.0
            for k in range(indptr[rows[s]], indptr[rows[s] + 1]):
                total += data[k] * last[indices[k]]
            values[s] = signal[s] + gamma * total
        last[:] = values


@numba.njit(cache=True)
def _rows_times(indptr, indices, data, rows, matrix, out):
    """out[i, :] = (row ``rows[i]`` of the CSR kernel) @ matrix (matrix: S x m)."""
    for i in range(rows.size):
        for j in range(matrix.shape[1]):
            out[i, j] = 0.0
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            weight, column = data[k], indices[k]
            for j in range(matrix.shape[1]):
                out[i, j] += weight * matrix[column, j]


@numba.njit(cache=True)
def _rows_transposed_times(indptr, indices, data, rows, weights, out):
    """out += sum_i weights[i] (row ``rows[i]`` of the CSR kernel) (an S-vector)."""
    for i in range(rows.size):
        for k in range(indptr[rows[i]], indptr[rows[i] + 1]):
            out[indices[k]] += data[k] * weights[i]


class PolicySystems:
    """Exact solves of ``M_a = I - gamma P_a`` for the deterministic policies ``a`` (S,) of one
    task, reusing one sparse LU: that of a reference policy ``a0``, whose matrix differs from
    ``M_a`` only in the rows D of the states where ``a`` and ``a0`` differ. With
    ``Z = M_0^{-1} E_D`` (one column per such state, cached: it does not depend on ``a``) and
    ``R = (M_a - M_0)[D, :]``, the Sherman-Morrison-Woodbury identity gives

        M_a^{-1} = M_0^{-1} - Z C^{-1} R M_0^{-1},     C = I + R Z   (|D| x |D|),

    so a solve costs one LU solve (two for the transposed system) and a |D| x |D| dense solve
    instead of a new factorisation. A policy with more differing states than pay off (new
    columns cost more than a factorisation, measured on the first one) becomes the new
    reference. Every answer is certified like :class:`DiscountedSystem`'s: its residual, computed
    from the kernel itself, bounds the error by ``||r|| / (1 - gamma)``.
    """

    def __init__(self, task, tolerance: float = TOLERANCE, memory: int = 2 ** 25):
        kernel = task.transition_matrix
        self.indptr, self.indices, self.data = kernel.indptr, kernel.indices, kernel.data
        self.n_states, self.n_actions = task.n_states, task.n_actions
        self.gamma = float(task.gamma)
        self.tolerance = float(tolerance)
        self.kernel = kernel
        #: at most this many cached column entries (S x columns), 2^25 doubles = 256 MB
        self.memory = int(memory)
        self.reference = None
        self._lu = None
        self.factorisations = 0
        self.low_rank_solves = 0

    def _factorise(self, actions: np.ndarray) -> None:
        rows = policy_rows(self.n_actions, actions)
        matrix = sparse.eye_array(self.n_states, format="csr") - self.gamma * self.kernel[rows]
        self._lu = sparse_linalg.splu(sparse.csc_array(matrix), permc_spec="MMD_AT_PLUS_A",
                                      diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        self.reference = np.array(actions, copy=True)
        self._reference_rows = rows
        self._columns = np.empty((self.n_states, 0))
        self._column_of: dict[int, int] = {}
        #: how many new columns before a new factorisation pays: a fixed rule of the size, not
        #: a timing, so that every solve takes the same path in any process (measured on
        #: gridworlds: a factorisation costs as much as 46-67 columns at 50 x 50)
        self._column_budget = max(8, min(256, self.n_states // 50))
        self.factorisations += 1
        logger.debug("sparse LU of %d states (reference policy)", self.n_states)

    def system(self, actions: np.ndarray) -> _PolicySystem:
        """The solver of ``M_a`` (a new reference LU when ``a`` differs in too many states)."""
        actions = np.asarray(actions, dtype=np.int64)
        if self._lu is None:
            self._factorise(actions)
        differ = np.flatnonzero(actions != self.reference)
        new = [int(s) for s in differ if int(s) not in self._column_of]
        limit = min(self._column_budget, self.memory // max(self.n_states, 1))
        if len(new) > self._column_budget or self._columns.shape[1] + len(new) > limit:
            self._factorise(actions)
            differ, new = differ[:0], []
        if new:
            unit = np.zeros((self.n_states, len(new)))
            unit[new, np.arange(len(new))] = 1.0
            start = self._columns.shape[1]
            self._columns = np.hstack([self._columns, self._lu.solve(unit)])
            self._column_of.update({s: start + i for i, s in enumerate(new)})
        return _PolicySystem(self, actions, differ)

    def refactorise(self, actions: np.ndarray) -> _PolicySystem:
        """The system of ``actions`` on a fresh LU of its own matrix."""
        self._factorise(np.asarray(actions, dtype=np.int64))
        return _PolicySystem(self, self.reference, np.zeros(0, dtype=np.int64))


class _PolicySystem:
    """One policy's system on a :class:`PolicySystems` (interface of :class:`DiscountedSystem`:
    ``solve``, ``solve_transposed``, ``method``)."""

    def __init__(self, owner: PolicySystems, actions: np.ndarray, differ: np.ndarray):
        self.owner = owner
        self.actions = actions
        self.rows = policy_rows(owner.n_actions, actions)
        self.differ = differ
        self.method = "lu" if differ.size == 0 else "lu-low-rank"
        if differ.size:
            self.z = owner._columns[:, [owner._column_of[int(s)] for s in differ]]
            new_rows, old_rows = self.rows[differ], owner._reference_rows[differ]
            # R Z = -gamma (P_a[D] - P_0[D]) Z; C = I + R Z
            pz = np.empty((differ.size, differ.size))
            _rows_times(owner.indptr, owner.indices, owner.data, new_rows, self.z, pz)
            p0z = np.empty_like(pz)
            _rows_times(owner.indptr, owner.indices, owner.data, old_rows, self.z, p0z)
            capacitance = np.eye(differ.size) - owner.gamma * (pz - p0z)
            self._capacitance = scipy.linalg.lu_factor(capacitance)
            self._new_rows, self._old_rows = new_rows, old_rows

    def _r_times(self, y: np.ndarray) -> np.ndarray:
        o = self.owner
        out = np.empty((self.differ.size, 1))
        old = np.empty((self.differ.size, 1))
        _rows_times(o.indptr, o.indices, o.data, self._new_rows, y[:, None], out)
        _rows_times(o.indptr, o.indices, o.data, self._old_rows, y[:, None], old)
        return -o.gamma * (out[:, 0] - old[:, 0])

    def _apply(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        """M_a^{-1} b (or M_a^{-T} b) by the Woodbury identity."""
        o = self.owner
        if not transpose:
            y = o._lu.solve(b)
            if self.differ.size:
                y = y - self.z @ scipy.linalg.lu_solve(self._capacitance, self._r_times(y))
            return y
        y = o._lu.solve(b, trans="T")
        if self.differ.size:
            w = scipy.linalg.lu_solve(self._capacitance, self.z.T @ b, trans=1)
            # R^T w = -gamma (P_a[D] - P_0[D])^T w
            rt = np.zeros(o.n_states)
            _rows_transposed_times(o.indptr, o.indices, o.data, self._new_rows, w, rt)
            _rows_transposed_times(o.indptr, o.indices, o.data, self._old_rows, -w, rt)
            y = y - o._lu.solve(-o.gamma * rt, trans="T")
        return y

    def _residual(self, x: np.ndarray, b: np.ndarray, transpose: bool) -> np.ndarray:
        o = self.owner
        out = np.empty(o.n_states)
        kernel = _residual_transposed if transpose else _residual
        kernel(o.indptr, o.indices, o.data, self.rows, x, b, o.gamma, out)
        return out

    def _solve(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        b = np.ascontiguousarray(b, dtype=np.float64)
        if b.ndim == 2:
            return np.stack([self._solve(b[:, j], transpose) for j in range(b.shape[1])],
                            axis=1)
        norm = _certificate_norm(transpose)
        allowed = self.owner.tolerance * norm(b)
        x = self._apply(b, transpose)
        for _ in range(_REFINEMENTS + 1):
            residual = self._residual(x, b, transpose)
            if norm(residual) <= allowed:
                self.owner.low_rank_solves += bool(self.differ.size)
                return x
            x = x + self._apply(residual, transpose)
        if self.differ.size == 0:
            raise ArithmeticError("sparse LU did not certify the solve")   # pragma: no cover
        # the low-rank update lost accuracy (an ill-conditioned C): factorise this policy
        return self.owner.refactorise(self.actions)._solve(b, transpose)

    def solve(self, b: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """x with ``M_a x = b``, ``||x - x*||_inf`` certified (``guess`` is not needed: the
        solve is direct)."""
        return self._solve(b, transpose=False)

    def solve_transposed(self, b: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """y with ``M_a^T y = b``, ``||y - y*||_1`` certified (``guess`` is not needed: the
        solve is direct)."""
        return self._solve(b, transpose=True)


#: the PolicySystems of the tasks solved last (most recent last); bounded, so that holding many
#: tasks (training keeps thousands) does not hold a factorisation and its columns for each
_policy_systems: list = []
_KEEP = 2


def _route(task) -> str:
    """"lu" or "auto" for the task's sparsity pattern and discount, decided once per pattern
    from the kernel's structure alone, so that the route of a solve does not depend on what
    the process solved before: "lu" where every transition stays within 4 sqrt(S) states of its
    origin in the task's own numbering (banded: a grid numbered row by row), whose sparse LU
    fills in little (50 x 50 grid: 7.2e4 factor entries) and is reused across policies by
    :class:`PolicySystems`; "auto" (backups and GMRES, LU only where they do not certify)
    otherwise, e.g. on
    random kernels, whose LU fills in like a dense matrix."""
    pattern = _pattern(task)
    if pattern not in _preference:
        kernel = task.transition_matrix
        banded = _within(kernel.indptr, kernel.indices, task.n_actions,
                         int(4 * np.sqrt(task.n_states)))
        _preference[pattern] = "lu" if banded else "auto"
    return _preference[pattern]


@numba.njit(cache=True)
def _within(indptr, indices, n_actions, width):
    """Whether every entry of the (S A, S) kernel's row s A + a lies in columns s +- width
    (stops at the first that does not)."""
    for row in range(indptr.size - 1):
        origin = row // n_actions
        for k in range(indptr[row], indptr[row + 1]):
            if abs(indices[k] - origin) > width:
                return False
    return True


def policy_systems(task) -> PolicySystems | None:
    """The task's :class:`PolicySystems` where its sparsity pattern solves by LU (banded), else
    None (backups and GMRES first, as :func:`system_for`). Those of the last
    ``_KEEP`` tasks are kept."""
    if _route(task) != "lu":
        return None
    for i, (ref, systems) in enumerate(_policy_systems):
        if ref() is task:
            _policy_systems.append(_policy_systems.pop(i))
            return systems
    systems = PolicySystems(task)
    _policy_systems.append((weakref.ref(task), systems))
    del _policy_systems[:-_KEEP]
    return systems


def forget_policy_systems(task) -> None:
    """Drop the task's kept :class:`PolicySystems` (its next solve factorises afresh)."""
    _policy_systems[:] = [(ref, systems) for ref, systems in _policy_systems
                          if ref() is not task]
