"""Certified Safe-PCE: Safe-PCE's mixture of a cover policy with pi_s, with every worst-case
constant of Algorithm 2 replaced by a certificate computed from the test task's own data.

Guarantee (checked in ``safepce verify``, claim "certified"). Let the test task be
``M = M_theta*`` for a parameter theta* in the support of the family, where the family is either
finite or has d <= 3 parameters on a box ``[low, high]`` with a transition kernel affine in theta
(``P_theta = P_0 + sum_i theta_i B_i``), and reward, costs, budgets, rho and gamma not depending
on theta; tasks may have K >= 1 cost constraints. Checked when the algorithm is built,
:class:`CertificationError` naming the quantity and two members otherwise: a finite family on
every member; a parametric family must declare ``kernel_affine = True`` and the declaration is
verified on a lattice of the box (:data:`SCOPE_AXIS_POINTS` per axis; a kernel that leaves the
affine form only between lattice points is the declaration's responsibility). Then, with
probability at least ``1 - delta`` over the test-time randomness, for every test task, every
policy deployed that is not pi_s alone is feasible in every constraint (``V_cost_k <= b_k``).
pi_s alone is deployed only when nothing else is certified, so when pi_s is feasible on M
(Assumption 3.3) every deployed policy is feasible w.p. >= 1 - delta.
No union bound over K, no covering argument over D and no assumption on the cover radius.

Proof sketch (each step replaces a worst-case constant of the paper's analysis):

1. *A confidence set for the test task replaces the simulation lemma (Lemma C.3, eps L).* Every
   observed transition (s, a, s') of every episode, whichever mixture component produced it,
   has likelihood ``P_theta(s'|s, a)``; the policy's own probabilities cancel in likelihood
   ratios. For a prior w fixed before the run (D's mass on a coarse grid of the support),
   ``Z_t = sum_g w_g L_t(theta_g) / L_t(theta*)`` is a non-negative martingale with ``Z_0 = 1``
   under M (each ratio ``L_t(theta)/L_t(theta*)`` is one: the next state is drawn from
   theta*'s kernel, the action predictably). Ville's inequality gives
   ``P(exists t: Z_t >= 1/delta) <= delta``, so the set
   ``Theta_t = {theta : log L_t(theta) > log sum_g w_g L_t(theta_g) - log(1/delta)}`` contains
   theta* at every time t, simultaneously, w.p. >= 1 - delta (a confidence sequence: anytime
   valid, so testing after every block costs nothing, replacing Ineq. 5's ``ln(4K/delta)``).
   For an affine kernel ``log L_t`` is concave in theta, so Theta_t is convex: for d = 1 an
   interval, found exactly by root finding; for d = 2, 3 it is covered by dyadic cells, those
   that the tangent planes of ``log L_t`` cannot exclude (:class:`BoxModel`).
2. *Exact values over the set replace the predicted values of Eq. 3 and their eps(L+1) margin.*
   For every candidate pi_l of U_hat and for pi_s, V_cost(pi; M_theta) is computed exactly on a
   fine grid of the support (finite families: on every task). Between grid points of step h,
   ``V(theta) <= max(V(g_k), V(g_k+1)) + h^2/8 max|V''|`` and
   ``|V''| <= 2 gamma^2 ||B_pi||^2 max|cost| / (1-gamma)^3`` (differentiate
   ``(I - gamma P_pi(theta))^{-1}`` twice; ``||(I - gamma P_pi)^{-1}||_inf <= 1/(1-gamma)``), so
   the maximum of any mixture's cost over Theta_t is bounded exactly. In d dimensions a kept
   cell of sides h_i adds ``sum_i h_i^2/8 max|d^2 V / d theta_i^2|`` to its largest vertex value
   (the error of multilinear interpolation, a sum of 1-D ones), each constraint k with its own
   ``max|cost_k|``.
3. *The largest certified weight replaces Eq. 6's schedule.* Mixture values are linear in the
   weight (Def. 2.3): ``V_cost(alpha pi_l + (1-alpha) pi_s) = alpha V_cost(pi_l) + (1-alpha)
   V_cost(pi_s)``. Each block deploys the (candidate, alpha) with the best plug-in reward at the
   maximum-likelihood theta among the pairs whose bound ``max_{theta in Theta_t} [alpha
   V_cost(pi_l; theta) + (1-alpha) V_cost(pi_s; theta)] + margin <= b`` (alpha on a grid of
   1/``alpha_steps``), for every constraint (the K intervals of alpha intersected). On the
   event of step 1 each of them is feasible on M.
4. *Pooled data replace per-stage estimates and elimination.* All transitions of all episodes
   feed one likelihood, so no data are discarded at a stage change and no candidate needs to
   be eliminated: a candidate that does not fit the data simply loses the choice of step 3.

Detected from data: the run record's ``flags`` say ``model_inconsistent`` when an observed
transition is impossible under every theta of the support (the family assumption fails; mixing
stops, pi_s is deployed), ``pi_s_certified_infeasible`` when pi_s's cost exceeds b on all of
Theta_t (Assumption 3.3 fails on this task), and ``pi_s_not_certified`` when the run ends with
nothing certified, not even pi_s (Assumption 3.3 fails or is too close to call, e.g. pi_s's
cost within ~0.05 of b); ``uncertified_episodes`` counts the episodes that fell back to pi_s.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

from safepce.tabular import CMDP, evaluate_batch
from safepce.tabular.distributions import FiniteUniform
from safepce.tabular.errors import InputError

from ..harness import Deployment, TestTimeAlgorithm
from ..training import TrainingResult

logger = logging.getLogger(__name__)


class CertificationError(InputError):
    """The family or a setting does not allow the certificate (names the field)."""


@dataclass(frozen=True)
class CertifiedPreset:
    """Every number of the certified Safe-PCE: ``delta`` of the guarantee (1e-6, so that the
    guarantee itself, not luck, covers checks of 10^4 runs: at most 0.01 violating runs
    expected; at delta = 0.01 we measured 2 of 999 runs over D violating, within its 1%);
    ``grid`` points of the values grid and ``prior_grid`` points of the prior (1-D families);
    at most ``cells`` cells covering the confidence set (2 or 3 parameters, :class:`BoxModel`);
    alpha on a grid of ``1/alpha_steps``; blocks of ``first_block`` episodes growing by
    ``block_growth`` of the episodes so far, at most ``max_block``."""

    name: str = "certified"
    delta: float = 1e-6
    grid: int = 4001
    prior_grid: int = 401
    alpha_steps: int = 200
    cells: int = 1024
    first_block: int = 20
    block_growth: float = 0.05
    max_block: int = 2000


CERTIFIED = CertifiedPreset()


# --- the family as a model class ------------------------------------------------------------------


class FamilyModel:
    """The test task's possible kernels and, for given policies, their exact values.

    ``kind`` is "finite" (one point per task of a :class:`safepce.tabular.FiniteUniform`) or
    "affine"
    (a 1-D parameter on [low, high] with ``P_theta = P_0 + theta B``)."""

    def __init__(self, family, policies: np.ndarray, preset: CertifiedPreset):
        self.preset = preset
        if isinstance(family, FiniteUniform):
            self.kind = "finite"
            tasks = family.tasks
            for i, task in enumerate(tasks[1:], start=1):
                _check_same_but_kernel(tasks[0], task, "task 0", f"task {i}")
            self.kernels = np.stack([t.dense_P.reshape(-1) for t in tasks])           # (n, SAS)
            weights = family.weights if family.weights is not None else np.full(
                len(tasks), 1 / len(tasks))
            weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
            self.prior = np.log(np.maximum(weights, 1e-300))
            self.points = np.arange(len(tasks), dtype=np.float64)
            exact = evaluate_batch(tasks, policies)
            self.reward = exact.reward_value                                       # (n, J)
            self.costs = np.asarray(exact.cost_value).reshape(len(tasks), len(policies), -1)
            self.margins = np.zeros(self.costs.shape[-1])
            self.template = tasks[0]
            return
        self.kind = "affine"
        names = getattr(family, "parameter_names", ())
        low, high = getattr(family, "low", None), getattr(family, "high", None)
        if len(names) != 1 or low is None or high is None:
            raise CertificationError(
                "family: expected a finite family or a 1-D family with a support [low, high] "
                f"(families of 2 or 3 parameters: BoxModel, via family_model); got "
                f"{type(family).__name__} with {len(names)} parameters")
        _require_affine_declaration(family)
        low, high = float(low), float(high)
        first, last = family.build([low]), family.build([high])
        slope = (last.dense_P - first.dense_P) / (high - low)
        # the declaration verified on a dense grid (the ends included): the kernel on the
        # segment between the end kernels, everything else the low end's
        for theta in np.linspace(low, high, SCOPE_CHECK_POINTS):
            task = family.build([theta])
            where = f"theta = {low:g}", f"theta = {theta:g}"
            _check_same_but_kernel(first, task, *where)
            if not np.allclose(task.dense_P, first.dense_P + (theta - low) * slope,
                               atol=1e-12, rtol=0):
                gap = float(np.max(np.abs(task.dense_P - first.dense_P - (theta - low) * slope)))
                raise CertificationError(
                    f"family: expected a transition kernel affine in its parameter (the "
                    f"certificate's model class); at {where[1]} it is {gap:.3g} away from the "
                    f"segment between theta = {low:g} and theta = {high:g}")
        self.template = first
        self.low, self.high = low, high
        self.base = (first.dense_P - low * slope).reshape(-1)
        self.slope = slope.reshape(-1)
        self.points = np.linspace(low, high, preset.grid)
        self.step = (high - low) / (preset.grid - 1)
        self.prior_points = np.linspace(low, high, preset.prior_grid)
        self.prior = _prior(family, self.prior_points)
        self.costs, self.reward = _affine_values(first, first.dense_P - low * slope, slope,
                                                 policies, self.points)
        self.margins = self.step**2 / 8 * curvatures(first, slope[None])[0]

    # -- the confidence set ---------------------------------------------------------------------

    def _loglik(self, theta: np.ndarray, index: np.ndarray, counts: np.ndarray) -> np.ndarray:
        p = self.base[index][None] + np.asarray(theta, dtype=np.float64)[:, None] * \
            self.slope[index][None]
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
        return np.where(counts[None] > 0, logs, 0.0) @ counts

    def confidence_set(self, counts: np.ndarray, delta: float) -> tuple[np.ndarray, int] | None:
        """(indices of ``points`` whose values bound the set Theta_t of the module docstring,
        index of the maximum-likelihood point), or None when every theta has likelihood 0."""
        index = np.flatnonzero(counts)
        n = counts[index]
        if self.kind == "finite":
            with np.errstate(divide="ignore"):
                loglik = np.log(self.kernels[:, index]) @ n
            if not np.isfinite(loglik).any():
                return None
            threshold = logsumexp(self.prior + loglik) - math.log(1 / delta)
            return np.flatnonzero(loglik > threshold), int(np.argmax(loglik))
        coarse = self._loglik(self.prior_points, index, n)
        if not np.isfinite(coarse).any():
            return None
        threshold = logsumexp(self.prior + coarse) - math.log(1 / delta)

        def excess(theta: float) -> float:
            return max(float(self._loglik(np.array([theta]), index, n)[0]) - threshold, -1e300)

        # the maximiser of the concave log-likelihood: two vectorised zooms into its bracket
        best = int(np.argmax(coarse))
        lo = self.prior_points[max(best - 1, 0)]
        hi = self.prior_points[min(best + 1, len(self.prior_points) - 1)]
        for _ in range(2):
            local = np.linspace(lo, hi, 201)
            k = int(np.argmax(self._loglik(local, index, n)))
            lo, hi = local[max(k - 1, 0)], local[min(k + 1, 200)]
        top = local[k]
        # Theta_t = [left, right] (a superlevel set of a concave function); widen to grid cells
        left = self.low if excess(self.low) > 0 else brentq(excess, self.low, top, xtol=1e-12)
        right = self.high if excess(self.high) > 0 else brentq(excess, top, self.high,
                                                               xtol=1e-12)
        k0 = max(int(math.floor((left - self.low) / self.step)), 0)
        k1 = min(int(math.ceil((right - self.low) / self.step)), len(self.points) - 1)
        return np.arange(k0, k1 + 1), int(round((top - self.low) / self.step))


    def region(self, counts: np.ndarray, delta: float) -> Region | None:
        """The values that bound every policy's costs over Theta_t (None: every theta has
        likelihood 0)."""
        found = self.confidence_set(counts, delta)
        if found is None:
            return None
        cover, mle = found
        points = self.points[cover]
        return Region(self.costs[cover], np.broadcast_to(self.margins, (cover.size,
                                                                        self.margins.size)),
                      self.reward[mle], float(points.max() - points.min()))


@dataclass(frozen=True)
class Region:
    """What a decision needs from Theta_t: policies' exact costs (m, J, K) at m points such that
    on Theta_t every policy's (and mixture's) cost k is at most ``max over rows of costs[:, j,
    k] + margins[row, k]`` taken row by row (``margins`` (m, K): the curvature margin of the
    cell a row bounds); the policies' rewards (J,) at the maximum-likelihood point; the set's
    width (the largest extent over coordinates)."""

    costs: np.ndarray
    margins: np.ndarray
    reward: np.ndarray
    width: float


#: parameters at which a declared affine family is checked (equally spaced, ends included)
SCOPE_CHECK_POINTS = 129
#: every task quantity but the kernel, which the certificate assumes the same across the family
SCOPE_FIELDS = ("r", "costs", "budgets", "rho", "gamma")


def _require_affine_declaration(family) -> None:
    if not getattr(family, "kernel_affine", False):
        raise CertificationError(
            f"family: expected a finite family or one that declares kernel_affine=True (the "
            f"certificate's model class: P(theta) affine, everything else fixed); "
            f"{type(family).__name__} does not declare it")


def _check_same_but_kernel(first: CMDP, other: CMDP, first_name: str, other_name: str) -> None:
    """Refuse (naming the quantity and the two members) a family member that differs from
    ``first`` in anything but its kernel: the certificate bounds costs against one budget with
    one reward, cost, rho and gamma."""
    if (other.n_states, other.n_actions) != (first.n_states, first.n_actions):
        raise CertificationError(f"family: expected one (S, A) across the family; {first_name} "
                                 f"has {(first.n_states, first.n_actions)}, {other_name} "
                                 f"{(other.n_states, other.n_actions)}")
    for name in SCOPE_FIELDS:
        a, b = getattr(first, name), getattr(other, name)
        if np.shape(a) != np.shape(b) or not np.array_equal(a, b):
            raise CertificationError(
                f"family: expected {name} to be the same across the family (the certificate's "
                f"model class varies the kernel only); it differs between {first_name} and "
                f"{other_name}")


#: points per axis of the lattice on which a declared affine family of d parameters is checked
#: (129, 144 and 216 points for d = 1, 2, 3; the box's corners included)
SCOPE_AXIS_POINTS = {1: SCOPE_CHECK_POINTS, 2: 12, 3: 6}
#: points per axis of the prior's lattice (D's mass per cell) for d = 1, 2, 3
PRIOR_AXIS_POINTS = {1: 401, 2: 41, 3: 13}
#: the coarsest cells: 2^level per axis (64 cells for every d)
FIRST_LEVEL = {1: 6, 2: 3, 3: 2}
#: the finest cells: 2^20 per axis
DEEPEST_LEVEL = 20


class BoxModel:
    """A family of d <= 3 parameters on the box ``[low, high]`` with ``P_theta = P_0 + sum_i
    theta_i B_i`` and everything else fixed (declared ``kernel_affine``, verified on a lattice of
    :data:`SCOPE_AXIS_POINTS` per axis), with K >= 1 cost constraints.

    The confidence set Theta_t is the module docstring's (a superlevel set of the concave
    log-likelihood, so convex). It is covered by dyadic cells refined level by level: a cell is
    dropped when it cannot meet Theta_t, which the tangent planes prove: for a concave f and a
    vertex v with f(v) finite, ``f(x) <= f(v) + grad f(v) . (x - v)`` for every x, so
    ``max_cell f <= min_v [f(v) + sum_i max(0, g_i(v) (other_i - v_i))]``; below the threshold,
    no point of the cell is in Theta_t. Kept cells are split while at most ``preset.cells``
    would remain. On a kept cell of sides h_i every policy's (and mixture's) cost k is at most
    its largest vertex value plus ``sum_i h_i^2 / 8 max|d^2 V_k / d theta_i^2|`` (the
    multilinear interpolant's error, a sum of 1-D ones; :func:`curvatures`), and exact values at
    the vertices (one linear solve per vertex and policy) are cached across decisions on a
    lattice of 2^:data:`DEEPEST_LEVEL` points per axis."""

    kind = "affine-box"

    def __init__(self, family, policies: np.ndarray, preset: CertifiedPreset):
        self.preset = preset
        names = tuple(getattr(family, "parameter_names", ()))
        d = len(names)
        if not 1 <= d <= 3:
            raise CertificationError(f"family: expected 1 to 3 parameters; got {d} ({names})")
        low, high = getattr(family, "low", None), getattr(family, "high", None)
        if low is None or high is None:
            raise CertificationError(f"family: expected a support box [low, high]; "
                                     f"{type(family).__name__} has none")
        low = np.atleast_1d(np.asarray(low, dtype=np.float64))
        high = np.atleast_1d(np.asarray(high, dtype=np.float64))
        if low.shape != (d,) or high.shape != (d,) or not np.all(np.isfinite(low) & np.isfinite(
                high) & (low < high)):
            raise CertificationError(f"family: expected low < high, {d} finite numbers each; got "
                                     f"low={low.tolist()}, high={high.tolist()}")
        _require_affine_declaration(family)
        self.d, self.low, self.high, self.span = d, low, high, high - low
        first = family.build(low)
        slopes = []
        for i in range(d):
            corner = low.copy()
            corner[i] = high[i]
            slopes.append((family.build(corner).dense_P - first.dense_P) / self.span[i])
        slopes = np.stack(slopes)                                              # (d, S, A, S)
        axes = [np.linspace(low[i], high[i], SCOPE_AXIS_POINTS[d]) for i in range(d)]
        for theta in itertools.product(*axes):
            theta = np.array(theta)
            task = family.build(theta)
            where = f"theta = {low.tolist()}", f"theta = {np.round(theta, 12).tolist()}"
            _check_same_but_kernel(first, task, *where)
            gap = float(np.max(np.abs(task.dense_P - first.dense_P
                                      - np.tensordot(theta - low, slopes, axes=1))))
            if gap > 1e-12:
                raise CertificationError(
                    f"family: expected a transition kernel affine in its parameters (the "
                    f"certificate's model class); at {where[1]} it is {gap:.3g} away from "
                    f"P(low) + sum_i (theta_i - low_i) B_i")
        self.template = first
        self.budgets = np.asarray(first.budgets, dtype=np.float64)
        self.curvature = curvatures(first, slopes)                              # (d, K)
        base = first.dense_P - np.tensordot(low, slopes, axes=1)
        self.base, self.slopes = base.reshape(-1), slopes.reshape(d, -1)
        self.prior_points, self.prior = _box_prior(family, low, high, PRIOR_AXIS_POINTS[d])
        # log P at the prior's points on the kernel's support, computed once: the prior's sum
        # is then one product per decision
        support = np.flatnonzero((self.base != 0) | np.any(self.slopes != 0, axis=0))
        self._position = np.full(self.base.size, -1, dtype=np.int64)
        self._position[support] = np.arange(support.size)
        p = self.base[support][None] + self.prior_points @ self.slopes[:, support]
        with np.errstate(divide="ignore", invalid="ignore"):
            self._prior_logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
        self._base_pi = np.einsum("jsa,sat->jst", policies, base)
        self._slopes_pi = np.einsum("jsa,isat->ijst", policies, slopes)
        self._signals = _signals(first, policies)
        self._index: dict[int, int] = {}
        self._costs = np.empty((0, len(policies), first.n_constraints))
        self._rewards = np.empty((0, len(policies)))
        corners = np.array(list(itertools.product((0, 1), repeat=d)), dtype=np.int64)
        self._corners = corners                                                 # (2^d, d)

    # -- the log-likelihood and its gradient -----------------------------------------------------

    def _loglik(self, theta: np.ndarray, index: np.ndarray, counts: np.ndarray,
                gradient: bool = False):
        """log L_t at points theta (m, d), and its gradient (m, d) where finite."""
        p = self.base[index][None] + theta @ self.slopes[:, index]
        positive = p > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(positive, np.log(np.where(positive, p, 1.0)), -np.inf)
        value = logs @ counts
        if not gradient:
            return value
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(positive, counts[None] / np.where(positive, p, 1.0), 0.0)
        return value, ratio @ self.slopes[:, index].T

    def _theta(self, lattice: np.ndarray) -> np.ndarray:
        """Parameters of finest-lattice integer coordinates (m, d)."""
        return self.low + lattice / 2.0**DEEPEST_LEVEL * self.span

    def _may_meet(self, cells: np.ndarray, level: int, index, counts, threshold) -> np.ndarray:
        """Which cells (c, d) of ``level`` the tangent planes cannot exclude from Theta_t."""
        size = 2**(DEEPEST_LEVEL - level)
        corners = (cells[:, None, :] + self._corners[None]) * size           # (c, 2^d, d)
        # neighbouring cells share vertices: evaluate each vertex once
        flat = corners.reshape(-1, self.d)
        _, first, inverse = np.unique(flat @ (2**DEEPEST_LEVEL + 1)**np.arange(self.d),
                                      return_index=True, return_inverse=True)
        value, grad = self._loglik(self._theta(flat[first]), index, counts, gradient=True)
        value = value[inverse.reshape(-1)].reshape(len(cells), -1)
        grad = grad[inverse.reshape(-1)].reshape(len(cells), -1, self.d)
        # from vertex v the cell extends by +h_i where v is at its lower side, -h_i otherwise
        step = np.where(self._corners == 0, 1.0, -1.0)[None] * (self.span / 2**level)
        with np.errstate(invalid="ignore"):
            bound = value + np.maximum(grad * step, 0.0).sum(axis=-1)
        bound = np.where(np.isfinite(value), bound, np.inf)
        return bound.min(axis=1) >= threshold

    # -- exact values at lattice vertices ---------------------------------------------------------

    def _values(self, lattice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (costs (m, J, K), rewards (m, J)) at finest-lattice vertices, cached."""
        width = 2**DEEPEST_LEVEL + 1
        keys = (lattice * width**np.arange(self.d)).sum(axis=1)
        missing = sorted({int(k) for k in keys} - self._index.keys())
        if missing:
            codes = np.array(missing, dtype=np.int64)
            coordinates = np.stack([(codes // width**i) % width for i in range(self.d)], axis=1)
            costs, rewards = self._solve(self._theta(coordinates))
            start = len(self._rewards)
            self._costs = np.concatenate([self._costs, costs])
            self._rewards = np.concatenate([self._rewards, rewards])
            self._index.update({k: start + i for i, k in enumerate(missing)})
        rows = np.array([self._index[int(k)] for k in keys], dtype=np.int64)
        return self._costs[rows], self._rewards[rows]

    def _solve(self, theta: np.ndarray, chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
        S = self.template.n_states
        out = np.empty((len(theta), self._base_pi.shape[0], self._signals.shape[-1]))
        for start in range(0, len(theta), chunk):
            t = theta[start:start + chunk]
            P = self._base_pi[None] + np.einsum("gi,ijst->gjst", t, self._slopes_pi)
            system = np.eye(S) - self.template.gamma * P
            values = np.linalg.solve(system, np.broadcast_to(
                self._signals, P.shape[:2] + self._signals.shape[1:]))
            out[start:start + chunk] = np.einsum("s,gjsx->gjx", self.template.rho, values)
        return out[..., 1:], out[..., 0]

    # -- the region ---------------------------------------------------------------------------

    def cells(self, counts: np.ndarray, delta: float) -> tuple[np.ndarray, int] | None:
        """(cells (c, d) as integer indices at ``level``, level): dyadic cells of one level
        covering Theta_t, at most ``preset.cells`` of them unless the coarsest level needs
        more; None when every theta has likelihood 0."""
        index = np.flatnonzero(counts)
        n = counts[index]
        position = self._position[index]
        if np.any(position < 0):
            return None                       # a transition no kernel of the box can make
        coarse = self._prior_logs[:, position] @ n
        if not np.isfinite(coarse).any():
            return None
        threshold = logsumexp(self.prior + coarse) - math.log(1 / delta)
        threshold -= 1e-9 * (1 + abs(threshold))          # rounding: keep rather than drop
        level = FIRST_LEVEL[self.d]
        cells = np.array(list(itertools.product(range(2**level), repeat=self.d)),
                         dtype=np.int64)
        while True:
            cells = cells[self._may_meet(cells, level, index, n, threshold)]
            if not len(cells):
                return None                       # only off the event, by rounding: no claim
            if level == DEEPEST_LEVEL or len(cells) * 2**self.d > self.preset.cells:
                return cells, level
            cells = (2 * cells[:, None, :] + self._corners[None]).reshape(-1, self.d)
            level += 1

    def region(self, counts: np.ndarray, delta: float) -> Region | None:
        """:meth:`FamilyModel.region` on the kept cells (None: every theta has likelihood 0)."""
        found = self.cells(counts, delta)
        if found is None:
            return None
        cells, level = found
        index = np.flatnonzero(counts)
        n = counts[index]
        size = 2**(DEEPEST_LEVEL - level)
        lattice = np.unique(((cells[:, None, :] + self._corners[None]) * size).reshape(
            -1, self.d), axis=0)
        costs, rewards = self._values(lattice)
        margin = ((self.span / 2**level)**2 / 8) @ self.curvature                # (K,)
        theta = self._theta(lattice)
        loglik = self._loglik(theta, index, n)
        return Region(costs, np.broadcast_to(margin, (len(lattice), margin.size)),
                      rewards[int(np.argmax(loglik))], float(np.ptp(theta, axis=0).max()))


def _box_prior(family, low: np.ndarray, high: np.ndarray, per_axis: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(points (m, d), log-weights (m,)): a lattice of the box with D's mass per cell where D
    gives :meth:`~safepce.tabular.TaskDistribution.box_mass`, else uniform (any prior fixed
    before the run keeps the guarantee)."""
    axes = [np.linspace(low[i], high[i], per_axis) for i in range(len(low))]
    points = np.array(list(itertools.product(*axes)))
    half = (high - low) / (per_axis - 1) / 2
    lower = np.where(np.isclose(points, low), -np.inf, points - half)
    upper = np.where(np.isclose(points, high), np.inf, points + half)
    try:
        mass = np.asarray(family.box_mass(lower, upper), dtype=np.float64).reshape(-1)
    except (NotImplementedError, AttributeError):
        mass = np.ones(len(points))
    mass = np.maximum(mass, 0.0) + 1e-12
    return points, np.log(mass / mass.sum())


def certified_weights(cost_l: np.ndarray, cost_s: np.ndarray, limit: float, steps: int
                      ) -> tuple[float, float] | None:
    """The weights alpha on the grid k/steps with ``alpha cost_l[g] + (1 - alpha) cost_s[g] <=
    limit[g]`` at every point g (``limit`` a number or one per point): an interval [low, high]
    (an intersection of half-lines, rounded inwards to the grid), or None when it is empty."""
    low, high = 0.0, 1.0
    limit = np.broadcast_to(np.asarray(limit, dtype=np.float64), np.shape(cost_s))
    slope = cost_l - cost_s
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (limit - cost_s) / slope
    rising, falling, flat = slope > 0, slope < 0, slope == 0
    if np.any(flat & (cost_s > limit)):
        return None
    if rising.any():
        high = min(high, float(bound[rising].min()))
    if falling.any():
        low = max(low, float(bound[falling].max()))
    low, high = math.ceil(low * steps - 1e-9) / steps, math.floor(high * steps + 1e-9) / steps

    def holds(alpha: float) -> bool:
        return bool(np.all(alpha * cost_l + (1 - alpha) * cost_s <= limit))

    # the rounding tolerance must not admit an uncertified end point; the set is convex, so
    # checking both ends exactly certifies every weight between them
    if low <= high and not holds(high):
        high -= 1 / steps
    if low <= high and not holds(low):
        low += 1 / steps
    if low > high or not (holds(low) and holds(high)):
        return None
    return low, high


def _all_constraints(cost_l: np.ndarray, cost_s: np.ndarray, limits: np.ndarray, steps: int
                     ) -> tuple[float, float] | None:
    """:func:`certified_weights` for K constraints at once (arrays (m, K)): the intersection of
    the K intervals (each holds exactly the grid weights certified for its constraint, so every
    weight in the intersection is certified for all), or None."""
    low, high = 0.0, 1.0
    for k in range(cost_s.shape[1]):
        interval = certified_weights(cost_l[:, k], cost_s[:, k], limits[:, k], steps)
        if interval is None:
            return None
        low, high = max(low, interval[0]), min(high, interval[1])
    return (low, high) if low <= high else None


def _affine_values(template: CMDP, base: np.ndarray, slope: np.ndarray, policies: np.ndarray,
                   points: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Exact (cost, reward) values (G, J) of each policy on ``P_0 + theta B`` for theta in
    ``points``."""
    S = template.n_states
    base_pi = np.einsum("jsa,sat->jst", policies, base)
    slope_pi = np.einsum("jsa,sat->jst", policies, slope)
    signals = _signals(template, policies)                                     # (J, S, 1 + K)
    cost = np.empty((points.size, len(policies), template.n_constraints))
    reward = np.empty((points.size, len(policies)))
    identity = np.eye(S)
    for start in range(0, points.size, chunk):
        theta = points[start:start + chunk]
        P = base_pi[None] + theta[:, None, None, None] * slope_pi[None]          # (g, J, S, S)
        system = identity - template.gamma * P
        values = np.linalg.solve(system, np.broadcast_to(signals, P.shape[:2] + signals.shape[1:]))
        out = np.einsum("s,gjsx->gjx", template.rho, values)
        reward[start:start + chunk], cost[start:start + chunk] = out[..., 0], out[..., 1:]
    return cost, reward


def _signals(template: CMDP, policies: np.ndarray) -> np.ndarray:
    """Per-state reward and K costs of each policy, (J, S, 1 + K)."""
    return np.concatenate([np.einsum("jsa,sa->js", policies, template.r)[..., None],
                           np.einsum("jsa,sak->jsk", policies, template.costs)], axis=-1)


def curvatures(template: CMDP, slopes: np.ndarray) -> np.ndarray:
    """(d, K): ``2 gamma^2 ||B_i||^2 max|c_k| / (1 - gamma)^3``, a bound on ``|d^2 V_k /
    d theta_i^2|`` for every policy (and mixture) on the kernel ``P_0 + sum_i theta_i B_i``:
    ``d^2/dtheta_i^2 (I - gamma P_pi)^{-1} = 2 gamma^2 G B_i G B_i G`` with ``G = (I - gamma
    P_pi)^{-1}``, ``||G||_inf <= 1/(1-gamma)``, ``||B_i^pi||_inf <= max_{s,a} sum_s' |B_i|`` and
    ``||rho||_1 = 1``. ``slopes``: (d, S, A, S)."""
    gamma = template.gamma
    norms = np.abs(slopes).sum(axis=-1).reshape(len(slopes), -1).max(axis=1)        # (d,)
    scale = np.abs(template.costs).reshape(-1, template.n_constraints).max(axis=0)  # (K,)
    return 2 * gamma**2 * norms[:, None]**2 * scale[None] / (1 - gamma)**3


def _prior(family, points: np.ndarray) -> np.ndarray:
    """log-weights of a prior on ``points``: D's mass per cell where D has a CDF, else uniform
    (any prior fixed before the run keeps the guarantee)."""
    half = (points[1] - points[0]) / 2
    try:
        mass = np.asarray(family.cdf(points + half), dtype=np.float64) - np.asarray(
            family.cdf(points - half), dtype=np.float64)
    except NotImplementedError:
        mass = np.ones(points.size)
    mass = np.maximum(mass, 0.0) + 1e-12
    return np.log(mass / mass.sum())


_MODELS: dict[str, FamilyModel] = {}


def _family_key(family) -> bytes | None:
    """Bytes identifying ``family``'s tasks (None: not cacheable)."""
    if isinstance(family, FiniteUniform):
        digest = hashlib.sha256()
        for task in family.tasks:
            for array in (task.dense_P, task.r, task.costs, task.rho, task.budgets):
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.digest()
    try:
        return json.dumps(family.to_dict(), sort_keys=True, default=str).encode()
    except (NotImplementedError, TypeError, AttributeError):
        return None


def _build_model(family, policies: np.ndarray, preset: CertifiedPreset):
    if not isinstance(family, FiniteUniform) and len(getattr(family, "parameter_names", ())) > 1:
        return BoxModel(family, policies, preset)
    return FamilyModel(family, policies, preset)


def family_model(family, policies: np.ndarray, preset: CertifiedPreset
                 ) -> FamilyModel | BoxModel:
    """The model of ``family`` for ``policies``: :class:`FamilyModel` for finite and 1-D families,
    :class:`BoxModel` for 2 or 3 parameters; cached per process by the family's description and
    the policies' bytes (runs of one training share it, and a BoxModel's values)."""
    described = _family_key(family)
    if described is None:
        return _build_model(family, policies, preset)
    key = hashlib.sha256(described + np.ascontiguousarray(policies).tobytes()
                         + repr(preset).encode()).hexdigest()
    if key not in _MODELS:
        if len(_MODELS) > 8:
            _MODELS.clear()
        logger.debug("building the certified model of %s for %d policies", type(family).__name__,
                     len(policies))
        _MODELS[key] = _build_model(family, policies, preset)
    return _MODELS[key]


# --- the algorithm -----------------------------------------------------------------------------


class CertifiedSafePCE(TestTimeAlgorithm):
    """Certified Safe-PCE (module docstring): candidates from U_hat, mixed with pi_s at the largest
    weight whose cost is certified, from a likelihood confidence sequence over the family."""

    name = "safe-pce-certified"
    needs_trajectories = True
    multi_constraint = True

    def __init__(self, training: TrainingResult, family, horizon: int,
                 preset: CertifiedPreset = CERTIFIED):
        if not isinstance(preset, CertifiedPreset):
            raise CertificationError(f"preset: expected a CertifiedPreset; got {preset!r}")
        if not 0 < preset.delta < 1:
            raise CertificationError(f"delta: expected a number in (0, 1); got {preset.delta!r}")
        for field_name in ("grid", "prior_grid", "alpha_steps", "first_block", "max_block"):
            value = getattr(preset, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise CertificationError(f"{field_name}: expected an integer >= 2; got {value!r}")
        self.preset_object = preset
        self.preset = preset.name
        self.training = training
        self.horizon = int(horizon)
        policies = np.concatenate([np.asarray(training.policies),
                                   np.asarray(training.safe_policy)[None]])
        self.model = family_model(family, policies, preset)
        template = self.model.template
        self.budgets = np.asarray(template.budgets, dtype=np.float64)             # (K,)
        self.n_states, self.n_actions = template.n_states, template.n_actions

    @classmethod
    def from_training(cls, training: TrainingResult, family, horizon: int,
                      preset: CertifiedPreset, delta: float | None = None):
        return cls(training, family, horizon, preset)

    def reset(self, n_episodes: int, seed=None) -> None:
        self.n_episodes = int(n_episodes)
        self.episode = 0
        self.counts = np.zeros(self.n_states * self.n_actions * self.n_states)
        self.flags: set[str] = set()
        self.events: list[dict] = []
        self.uncertified = 0
        #: episodes that deployed pi_s alone so far, and the blocks in which pi_s's cost was
        #: certified above the budget (Assumption 3.3 fails on this task)
        self.safe_alone = 0
        self.infeasible_blocks: list[dict] = []
        #: (candidate or None for pi_s alone, alpha); ``fallback``: pi_s deployed uncertified
        self.choice: tuple[int | None, float] = (None, 0.0)
        self.fallback = True
        self._decide()

    # -- the certificate ----------------------------------------------------------------------

    def _decide(self) -> None:
        """Choose (candidate, alpha) for the next block from the current counts."""
        previous = self.choice, self.fallback
        region = self.model.region(self.counts, self.preset_object.delta)
        if region is None:
            self.flags.add("model_inconsistent")
            self.choice, self.fallback = (None, 0.0), True
            return self._record(previous, width=math.nan)
        safe = -1                                     # pi_s is the last policy
        cost_s = region.costs[:, safe]                                           # (m, K)
        limits = self.budgets[None] - region.margins                             # (m, K)
        # a lower bound of pi_s's cost k over the set: the smallest row value less its margin
        # (on a cell the cost is at least its smallest vertex value less the same margin)
        lower = (cost_s - region.margins).min(axis=0)                            # (K,)
        if np.any(lower > self.budgets):
            # at any time, not only at the end: the episodes that deployed pi_s alone so far
            # ran an infeasible policy (on the confidence event)
            self.flags.add("pi_s_certified_infeasible")
            k = int(np.argmax(lower - self.budgets))
            self.infeasible_blocks.append({"episode": self.episode + 1,
                                           "pi_s_alone_episodes_so_far": self.safe_alone,
                                           "constraint": k,
                                           "pi_s_cost_lower_bound": float(lower[k])})
        best, best_value = (None, 0.0), -math.inf
        reward_s = region.reward[safe]
        for j in range(region.costs.shape[1] - 1):
            interval = _all_constraints(region.costs[:, j], cost_s, limits,
                                        self.preset_object.alpha_steps)
            if interval is None:
                continue
            # the plug-in reward is linear in alpha: the best certified weight is an end point
            gain = region.reward[j] - reward_s
            alpha = interval[1] if gain >= 0 else interval[0]
            value = reward_s + alpha * gain
            if value > best_value:
                best_value, best = value, (j, alpha)
        if best[1] == 0.0:
            best = (None, 0.0)                        # pi_s alone (certified or not)
        # nothing certified, not even pi_s: pi_s is deployed as the fallback
        self.fallback = best[0] is None and not np.all(cost_s <= limits)
        self.choice = best
        self._record(previous, width=region.width)

    def _record(self, previous, width: float) -> None:
        if (self.choice, self.fallback) != previous:
            self.events.append({"episode": self.episode + 1, "event": "deploy",
                                "candidate": self.choice[0], "alpha": self.choice[1],
                                "certified": not self.fallback, "set_width": width})

    # -- TestTimeAlgorithm --------------------------------------------------------------------

    def _block(self) -> int:
        p = self.preset_object
        return int(min(max(p.first_block, p.block_growth * self.episode), p.max_block))

    def deployment(self) -> Deployment:
        safe = self.training.safe_policy
        candidate, alpha = self.choice
        episodes = self._block()
        if candidate is None:
            return Deployment((safe,), np.ones(1), ("safe",), episodes)
        policy = self.training.policies[candidate]
        if alpha >= 1.0:
            return Deployment((policy,), np.ones(1), (("candidate", candidate),), episodes)
        return Deployment((policy, safe), np.array([alpha, 1 - alpha]),
                          (("candidate", candidate), "safe"), episodes)

    def observe(self, reward_returns: np.ndarray, cost_returns: np.ndarray,
                trajectories=None) -> int:
        size = int(np.asarray(reward_returns).size)
        if trajectories is None:
            raise CertificationError("trajectories: the certified Safe-PCE needs the episodes' "
                                     "transitions (run it through theory.run_test_phase)")
        if self.fallback:
            self.uncertified += size
        if self.choice[0] is None:
            self.safe_alone += size
        states, actions = trajectories.states, trajectories.actions
        S, A = self.n_states, self.n_actions
        flat = (states[:, :-1] * A + actions[:, :-1]) * S + states[:, 1:]
        self.counts += np.bincount(flat.ravel(), minlength=self.counts.size)
        self.episode += size
        if "model_inconsistent" not in self.flags:
            self._decide()
        return size

    def log(self) -> dict:
        flags = set(self.flags)
        if self.fallback:
            flags.add("pi_s_not_certified")          # the run ends on the pi_s fallback
        model = self.model
        grid = int(model.points.size) if hasattr(model, "points") else None
        return {"preset": self.preset, "constants": {
                    "delta": self.preset_object.delta, "model": model.kind,
                    "margin": (model.margins.tolist() if hasattr(model, "margins") else
                               "per cell"), "grid": grid},
                "events": self.events, "flags": sorted(flags),
                "uncertified_episodes": self.uncertified,
                "pi_s_alone_episodes": self.safe_alone,
                "pi_s_certified_infeasible_blocks": self.infeasible_blocks,
                "final_alpha": self.choice[1],
                "final_candidate": self.choice[0],
                "candidate_order": [e["candidate"] for e in self.events
                                    if e["candidate"] is not None]}
