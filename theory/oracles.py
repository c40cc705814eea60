"""The three oracles of the training phase (Section 3) and the greedy cover (Subroutine 3).

Units: O_l returns values in task units (reward, discounted cost); O_s's margin ``xi`` is in the
paper's normalised utility units (Assumption 3.3), i.e. a cost slack of ``xi * utility_scale``.

Coverage oracles answer O_c(M_i, M_j) = 1 iff the tasks are within ``radius``:

* :class:`ParameterCoverage`: ``max_k |theta_i,k - theta_j,k| <= radius`` (the authors' experiment).
* :class:`DistanceCoverage`: the exact task distance ``d(M_i, M_j) <= radius`` (Section 2).

For 1-D families in which the criterion is ``scale * |theta_i - theta_j| <= radius`` the
neighbourhoods are intervals of the sorted parameters, and the greedy cover runs on prefix sums
in O(N) per pick with O(N) memory. Otherwise candidate pairs are pruned by a window on one
coordinate (valid because every coordinate's change is at most the distance) and the coverage
matrix is stored sparse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sparse

from safepce import tabular
from safepce.tabular import CMDP
from safepce.tabular.distributions import TaskDistribution
from safepce.tabular.errors import InputError

from .gradients import exact_gradient, softmax


class TrainingInputError(InputError):
    """A training-phase setting is out of range (raised before any long computation)."""


class SafePolicyError(InputError):
    """O_s found no policy with the required margin xi on every task (Assumption 3.3 fails)."""


# --- O_c and Subroutine 3 ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cover:
    """Result of Subroutine 3: ``indices`` into the sample (in order of selection) and how many
    sampled tasks were left uncovered (at most 3 delta N)."""

    indices: np.ndarray
    n_uncovered: int


def _check_radius(radius: float) -> float:
    if not (np.isfinite(radius) and radius > 0):
        raise TrainingInputError(f"radius: expected a positive number; got {radius!r}")
    return float(radius)


class _IntervalCover:
    """Greedy cover when neighbourhoods are the intervals |theta_i - theta_j| <= width."""

    @staticmethod
    def greedy(theta: np.ndarray, width: float, max_uncovered: float) -> Cover:
        order = np.argsort(theta, kind="stable")
        values = theta[order]
        lo = np.searchsorted(values, values - width, side="left")
        hi = np.searchsorted(values, values + width, side="right")
        uncovered = np.ones(values.size, dtype=np.int64)
        chosen = np.zeros(values.size, dtype=bool)
        picks = []
        remaining = values.size
        while remaining > max_uncovered:
            prefix = np.concatenate([[0], np.cumsum(uncovered)])
            gain = prefix[hi] - prefix[lo]
            gain[chosen] = -1
            # ties go to the smallest sample index, as in the sparse path
            best = np.flatnonzero(gain == gain.max())
            j = int(best[np.argmin(order[best])])
            picks.append(order[j])
            chosen[j] = True
            uncovered[lo[j]:hi[j]] = 0
            remaining = int(uncovered.sum())
        return Cover(indices=np.asarray(picks, dtype=np.int64), n_uncovered=remaining)


@numba.njit(cache=True)
def _prefix_range_sums(order_rank, weight, prefix, low, high, n_ranks):
    """For each query q: the weight of the first ``prefix[q]`` points (in x order) whose y-rank
    lies in [low[q], high[q]) (offline, one Fenwick tree over y-ranks)."""
    n_queries = prefix.size
    queries = np.argsort(prefix)
    tree = np.zeros(n_ranks + 1)
    out = np.zeros(n_queries)
    added = 0
    for k in range(n_queries):
        q = queries[k]
        while added < prefix[q]:
            i = order_rank[added] + 1
            w = weight[added]
            while i <= n_ranks:
                tree[i] += w
                i += i & (-i)
            added += 1
        total = 0.0
        i = high[q]
        while i > 0:
            total += tree[i]
            i -= i & (-i)
        i = low[q]
        while i > 0:
            total -= tree[i]
            i -= i & (-i)
        out[q] = total
    return out


class _PlaneCover:
    """Greedy cover of 2-D parameters by the boxes ``max_k |theta_i,k - theta_j,k| <= width``,
    without listing the pairs (with a wide box and 10^5 samples they number ~10^9: 12 GB as a
    sparse matrix). Each round counts every box's uncovered points by an offline sweep in x with
    a Fenwick tree over y-ranks, O(N log N)."""

    @staticmethod
    def greedy(theta: np.ndarray, width: float, max_uncovered: float) -> Cover:
        n = theta.shape[0]
        by_x = np.argsort(theta[:, 0], kind="stable")
        xs = theta[by_x, 0]
        ys = np.sort(theta[:, 1])
        y_rank = np.searchsorted(ys, theta[by_x, 1], side="left")     # point (x order) -> rank
        # box of point i: points with x in [x_i - w, x_i + w] are x-order indices [a_i, b_i)
        a = np.searchsorted(xs, theta[:, 0] - width, side="left")
        b = np.searchsorted(xs, theta[:, 0] + width, side="right")
        low = np.searchsorted(ys, theta[:, 1] - width, side="left")
        high = np.searchsorted(ys, theta[:, 1] + width, side="right")
        prefix = np.concatenate([b, a])
        lows, highs = np.concatenate([low, low]), np.concatenate([high, high])
        uncovered = np.ones(n)
        chosen = np.zeros(n, dtype=bool)
        picks = []
        remaining = n
        while remaining > max_uncovered:
            sums = _prefix_range_sums(y_rank, uncovered[by_x], prefix, lows, highs, n)
            gain = sums[:n] - sums[n:]
            gain[chosen] = -1
            j = int(np.flatnonzero(gain == gain.max())[0])    # ties: smallest sample index
            picks.append(j)
            chosen[j] = True
            inside = np.max(np.abs(theta - theta[j]), axis=1) <= width
            uncovered[inside] = 0.0
            remaining = int(uncovered.sum())
        return Cover(indices=np.asarray(picks, dtype=np.int64), n_uncovered=remaining)


def greedy_cover_sparse(adjacency: sparse.csr_array, max_uncovered: float,
                        weights: np.ndarray | None = None) -> Cover:
    """Subroutine 3 on a symmetric boolean coverage matrix (A[i, j] = O_c(M_i, M_j)).

    Repeatedly add the j not yet chosen that covers most still-uncovered tasks (ties: smallest
    sample index); stop as soon as at most ``max_uncovered`` (= 3 delta N) remain. ``weights``
    counts how many sampled tasks each row stands for (default one each).
    """
    n = adjacency.shape[0]
    uncovered = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    chosen = np.zeros(n, dtype=bool)
    picks = []
    remaining = int(uncovered.sum())
    while remaining > max_uncovered:
        gain = adjacency @ uncovered
        gain[chosen] = -1
        j = int(np.argmax(gain))
        picks.append(j)
        chosen[j] = True
        uncovered[adjacency.indices[adjacency.indptr[j]:adjacency.indptr[j + 1]]] = 0.0
        remaining = int(uncovered.sum())
    return Cover(indices=np.asarray(picks, dtype=np.int64), n_uncovered=remaining)


def _window_pairs(projection: np.ndarray, width: float, chunk: int = 1 << 20):
    """All pairs i < j (original indices) with |projection_i - projection_j| <= width, in chunks."""
    order = np.argsort(projection, kind="stable")
    values = projection[order]
    hi = np.searchsorted(values, values + width, side="right")
    counts = hi - np.arange(values.size) - 1
    start = 0
    while start < values.size:
        stop = start + 1
        total = counts[start]
        while stop < values.size and total + counts[stop] <= chunk:
            total += counts[stop]
            stop += 1
        rows = np.repeat(np.arange(start, stop), counts[start:stop])
        offsets = np.arange(rows.size) - np.repeat(np.cumsum(counts[start:stop]) - counts[
            start:stop], counts[start:stop])
        yield order[rows], order[rows + 1 + offsets]
        start = stop


def _symmetric_adjacency(n: int, left: list, right: list) -> sparse.csr_array:
    rows = np.concatenate([np.arange(n), *left, *right])
    cols = np.concatenate([np.arange(n), *right, *left])
    return sparse.csr_array((np.ones(rows.size), (rows, cols)), shape=(n, n))


class ParameterCoverage:
    """O_c by parameters: ``max_k |theta_i,k - theta_j,k| <= radius`` (App. H.1 of the paper)."""

    name = "parameter"

    def __init__(self, radius: float):
        self.radius = _check_radius(radius)

    def greedy_cover(self, theta: np.ndarray, distribution: TaskDistribution,
                     max_uncovered: float) -> Cover:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape[1] == 1:
            return _IntervalCover.greedy(theta[:, 0], self.radius, max_uncovered)
        if theta.shape[1] == 2:
            return _PlaneCover.greedy(theta, self.radius, max_uncovered)
        return greedy_cover_sparse(self.coverage_matrix(theta, distribution), max_uncovered)

    def coverage_matrix(self, theta: np.ndarray, distribution: TaskDistribution
                        ) -> sparse.csr_array:
        """The sparse symmetric N x N matrix A[i, j] = 1 iff the parameters are within radius."""
        theta = np.asarray(theta, dtype=np.float64)
        left, right = [], []
        for i, j in _window_pairs(theta[:, 0], self.radius):
            keep = np.max(np.abs(theta[i] - theta[j]), axis=1) <= self.radius
            left.append(i[keep])
            right.append(j[keep])
        return _symmetric_adjacency(theta.shape[0], left, right)

    def describe(self) -> dict:
        return {"oracle": self.name, "radius": self.radius}


class DistanceCoverage:
    """O_c by the exact task distance ``d(M_i, M_j) <= radius`` (paper units, Section 2)."""

    name = "distance"

    def __init__(self, radius: float, chunk_tasks: int = 2048):
        self.radius = _check_radius(radius)
        self.chunk_tasks = chunk_tasks

    def greedy_cover(self, theta: np.ndarray, distribution: TaskDistribution,
                     max_uncovered: float) -> Cover:
        theta = np.asarray(theta, dtype=np.float64)
        if distribution.distance_scale is not None and theta.shape[1] == 1:
            # d = scale * |dtheta| exactly for this family (tested against tabular.distance).
            return _IntervalCover.greedy(theta[:, 0], self.radius / distribution.distance_scale,
                                         max_uncovered)
        unique, first, counts = np.unique(theta, axis=0, return_index=True, return_counts=True)
        if unique.shape[0] < theta.shape[0]:
            # a finite family: the same task sampled many times. The greedy on distinct tasks
            # weighted by their multiplicity picks the same tasks (a duplicate's gain is its
            # twin's; ties go to the first occurrence) without N^2 pairs of equal samples.
            order = np.argsort(first, kind="stable")        # distinct tasks by first occurrence
            cover = greedy_cover_sparse(
                self.coverage_matrix(unique[order], distribution), max_uncovered,
                weights=counts[order].astype(np.float64))
            return Cover(indices=first[order][cover.indices], n_uncovered=cover.n_uncovered)
        return greedy_cover_sparse(self.coverage_matrix(theta, distribution), max_uncovered)

    def coverage_matrix(self, theta: np.ndarray, distribution: TaskDistribution
                        ) -> sparse.csr_array:
        """Sparse A[i, j] = 1 iff d(M_i, M_j) <= radius, from each task's varying coordinates."""
        features, groups = self._features(distribution.build_many(theta))
        spread = features.max(axis=0) - features.min(axis=0) if features.size else np.zeros(0)
        n = features.shape[0]
        if spread.size == 0 or spread.max() == 0:
            return sparse.csr_array(np.ones((n, n)))
        left, right = [], []
        sup_columns = groups < 0
        tv_groups = groups[~sup_columns]
        boundaries = (np.flatnonzero(np.r_[True, tv_groups[1:] != tv_groups[:-1]])
                      if tv_groups.size else np.zeros(0, dtype=np.int64))
        for i, j in _window_pairs(features[:, int(np.argmax(spread))], self.radius):
            for start in range(0, i.size, 4096):
                a, b = i[start:start + 4096], j[start:start + 4096]
                gap = np.abs(features[a] - features[b])
                d = np.zeros(a.size)
                if sup_columns.any():
                    d = gap[:, sup_columns].max(axis=1)
                if boundaries.size:
                    tv = 0.5 * np.add.reduceat(gap[:, ~sup_columns], boundaries, axis=1)
                    d = np.maximum(d, tv.max(axis=1))
                keep = d <= self.radius
                left.append(a[keep])
                right.append(b[keep])
        return _symmetric_adjacency(n, left, right)

    @staticmethod
    def _features(tasks: list[CMDP]) -> tuple[np.ndarray, np.ndarray]:
        """Stack every task's paper-unit coordinates, keeping those that vary across tasks.

        ``groups[k] = -1`` marks a sup-norm coordinate (reward, utility); ``groups[k] = g >= 0``
        marks an entry of probability row g (rho or P(.|s, a)), whose TV is half its L1 gap.
        """
        S = tasks[0].n_states
        blocks = [np.stack([t.utility_form.reward.ravel() for t in tasks]),
                  np.stack([t.utility_form.utility.ravel() for t in tasks]),
                  np.stack([t.rho for t in tasks])]
        groups = np.concatenate([
            np.full(blocks[0].shape[1] + blocks[1].shape[1], -1),
            np.zeros(S, dtype=np.int64),
        ])
        features = np.concatenate(blocks, axis=1)
        varying = features.max(axis=0) > features.min(axis=0)
        features, groups = features[:, varying], groups[varying]
        if any(t.is_sparse for t in tasks):
            # kernel entries as one sparse (N, S*A*S) matrix; only the varying columns are
            # made dense (no task's S^2 A array is ever built)
            kernels = sparse.vstack([t.transition_matrix.reshape(1, -1) for t in tasks],
                                    format="csc")
            union = np.unique(kernels.tocoo().col)      # entries non-zero in some task
            kernel_features = kernels[:, union].toarray()
            keep = kernel_features.max(axis=0) > kernel_features.min(axis=0)
            columns, kernel_features = union[keep], kernel_features[:, keep]
        else:
            kernel_features = np.stack([t.P.ravel() for t in tasks])
            columns = np.flatnonzero(kernel_features.max(axis=0) > kernel_features.min(axis=0))
            kernel_features = kernel_features[:, columns]
        return (np.concatenate([features, kernel_features], axis=1),
                np.concatenate([groups, 1 + columns // S]))

    def describe(self) -> dict:
        return {"oracle": self.name, "radius": self.radius}


# --- O_l ------------------------------------------------------------------------------------


class ExactLPOracle:
    """O_l(M, eps, delta): the exact constrained optimum by the occupancy LP (0-optimal, feasible).

    Returns the policy and its exact values (task units). ``backend="auto"``: HiGHS directly on
    small dense tasks (~1 ms per re-solve on the gridworld, benchmarks/bench_lp.py), the
    Lagrangian route on sparse or large ones (benchmarks/bench_scale.py).
    """

    def __init__(self, backend: str = "auto"):
        self.backend = backend

    def __call__(self, task: CMDP) -> tabular.Solution:
        return tabular.solve(task, backend=self.backend)


# --- O_s ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SafePolicy:
    """pi_s with its exact values on each task: reward (m,), cost (m,) or (m, K) in task units,
    and ``margin`` (m,): the smallest normalised utility value (paper units) on each task."""

    policy: np.ndarray
    reward_values: np.ndarray
    cost_values: np.ndarray
    margin: np.ndarray


def _safe_policy_on(policy: np.ndarray, tasks: list[CMDP], xi: float, source: str) -> SafePolicy:
    batch = tabular.evaluate_batch(tasks, policy[None])
    cost = batch.cost_value[:, 0]
    margin = np.array([np.min(np.atleast_1d(t.utility_form.cost_value_to_paper(c)))
                       for t, c in zip(tasks, cost, strict=True)])
    if np.any(margin < xi):
        worst = int(np.argmin(margin))
        raise SafePolicyError(
            f"xi: {source} reaches a margin of only {margin[worst]:.6g} (paper units) on cover "
            f"task {worst}, below the required xi = {xi:.6g}; no xi-feasible policy was found "
            "(lower xi or change O_s)")
    return SafePolicy(policy=policy, reward_values=batch.reward_value[:, 0], cost_values=cost,
                      margin=margin)


class DesignatedSafePolicy:
    """O_s of the experiment: the LP-optimal policy of one designated task (noise 0.4 in the
    authors' code; App. H.1 says the noise-0.5 task, which has no feasible policy: erratum
    safe-policy-noise-0.5), checked exactly for margin ``xi`` on every
    task."""

    name = "designated"

    def __init__(self, parameter, xi: float = 0.0, backend: str = "auto"):
        self.parameter = np.atleast_1d(np.asarray(parameter, dtype=np.float64))
        self.xi = float(xi)
        self.backend = backend

    def __call__(self, tasks: list[CMDP], distribution: TaskDistribution) -> SafePolicy:
        try:
            policy = tabular.solve(distribution.build(self.parameter), backend=self.backend).policy
        except tabular.InfeasibleCMDPError as exc:
            raise SafePolicyError(f"safe_parameter: the designated task {self.parameter} has no "
                                  f"feasible policy ({exc})") from None
        return _safe_policy_on(policy, tasks, self.xi, f"the optimal policy of {self.parameter}")

    def describe(self) -> dict:
        return {"oracle": self.name, "parameter": self.parameter.tolist(), "xi": self.xi}


class GivenSafePolicy:
    """O_s for a family that comes with a simultaneous Slater policy (e.g. the property-test
    families of :mod:`safepce.tabular.strategies`): that policy, checked exactly for margin ``xi``
    on
    every cover task (Assumption 3.3)."""

    name = "given"

    def __init__(self, policy: np.ndarray, xi: float = 0.0):
        self.policy = np.asarray(policy, dtype=np.float64)
        self.xi = float(xi)

    def __call__(self, tasks: list[CMDP], distribution: TaskDistribution) -> SafePolicy:
        return _safe_policy_on(self.policy, tasks, self.xi, "the given safe policy")

    def describe(self) -> dict:
        return {"oracle": self.name, "xi": self.xi}


class WorstCaseSafePolicy:
    """O_s for any finite task set: maximise the worst-case normalised slack over the tasks.

    Softmax policy, exact gradients (policy-gradient theorem on the exact occupancies and
    Q-values), ascent on the soft minimum ``-tau log sum_i exp(-V_c^i / tau)`` (the worst-case
    task's gradient as tau -> 0, as suggested by the paper after Xu & Zhu). Starts from the
    minimum-cost LP policy of the task whose minimum cost is highest. The result is verified
    exactly; :class:`SafePolicyError` if some task's margin stays below ``xi``.
    """

    name = "worst-case"

    def __init__(self, xi: float = 0.0, iterations: int = 300, step: float = 50.0,
                 temperature: float = 1e-3):
        self.xi = float(xi)
        self.iterations = iterations
        self.step = step
        self.temperature = temperature

    def __call__(self, tasks: list[CMDP], distribution: TaskDistribution | None = None
                 ) -> SafePolicy:
        start = self._start(tasks)
        logits = np.log(np.clip(start, 1e-6, None))
        best_policy, best_margin = start, self._margins(start, tasks).min()
        for _ in range(self.iterations):
            policy = softmax(logits)
            margins, gradients = self._margins_and_gradients(logits, tasks)
            if margins.min() > best_margin:
                best_policy, best_margin = policy, margins.min()
            weights = np.exp(-(margins - margins.min()) / self.temperature)
            weights /= weights.sum()
            logits += self.step * np.einsum("i,isa->sa", weights, gradients)
        return _safe_policy_on(best_policy, tasks, self.xi, "worst-case ascent")

    @staticmethod
    def _start(tasks: list[CMDP]) -> np.ndarray:
        minima = [np.max(np.atleast_1d(tabular.minimum_cost(t)) - t.budgets) for t in tasks]
        hardest = tasks[int(np.argmax(minima))]
        min_cost_task = CMDP(hardest.P, -hardest.costs.sum(axis=2), np.zeros_like(hardest.r),
                             0.0, hardest.rho, hardest.gamma)
        return tabular.solve(min_cost_task, backend="auto").policy

    @staticmethod
    def _margins(policy: np.ndarray, tasks: list[CMDP]) -> np.ndarray:
        cost = tabular.evaluate_batch(tasks, policy[None]).cost_value[:, 0]
        return np.array([np.min(np.atleast_1d(t.utility_form.cost_value_to_paper(c)))
                         for t, c in zip(tasks, cost, strict=True)])

    @staticmethod
    def _margins_and_gradients(logits: np.ndarray, tasks: list[CMDP]):
        """Normalised worst-constraint slack of each task and its gradient in the logits
        (policy-gradient theorem, :func:`safepce.theory.gradients.exact_gradient`)."""
        margins, gradients = [], []
        for task in tasks:
            costs = [exact_gradient(task, logits, "cost", j) for j in range(task.n_constraints)]
            slack = task.utility_form.cost_value_to_paper(np.array([c for c, _ in costs]))
            j = int(np.argmin(np.atleast_1d(slack)))
            margins.append(float(np.atleast_1d(slack)[j]))
            gradients.append(-costs[j][1] / task.utility_form.utility_scale[j])
        return np.array(margins), np.array(gradients)

    def describe(self) -> dict:
        return {"oracle": self.name, "xi": self.xi, "iterations": self.iterations,
                "step": self.step, "temperature": self.temperature}



class MinimumCostSafePolicy:
    """O_s for large families: the least-cost policy of the cover task whose least cost is
    highest (the worst-case ascent's start, without the ascent), checked exactly for margin
    ``xi`` (normalised utility units, Assumption 3.3) on every cover task. One solve per cover
    task; :class:`SafePolicyError` if some task's margin is below ``xi`` (then use the
    worst-case ascent)."""

    name = "min-cost"

    def __init__(self, xi: float = 0.0):
        self.xi = float(xi)

    def __call__(self, tasks: list[CMDP], distribution: TaskDistribution | None = None
                 ) -> SafePolicy:
        return _safe_policy_on(WorstCaseSafePolicy._start(tasks), tasks, self.xi,
                               "the least-cost policy of the hardest cover task")

    def describe(self) -> dict:
        return {"oracle": self.name, "xi": self.xi}
