"""Covering numbers C_eps(D, delta) (Def. 4.1 of the paper).

C_eps(D, delta) is the least m such that m balls B(M_i, eps) hold probability >= 1 - delta under D.
For a 1-D family where the ball is an interval of the parameter (the parameter oracle, or a family
with d = scale * |dtheta|), the balls are intervals of length 2 eps (in parameter units):

* ``method="quantile"``: exact for a unimodal distribution with a closed-form CDF. m intervals
  cover at most the mass of the best single interval of length 2 m eps (their union has at most
  that length, and a unimodal density puts the most mass on one interval), and adjacent intervals
  attain it, so C = least m with ``max_x F(x + 2 m eps) - F(x) >= 1 - delta``.
* ``method="sample"``: exact for the empirical distribution of a large sample, by dynamic
  programming over the sorted sample (the most points m intervals of length 2 eps can hold).

For any family, :func:`greedy_covering_estimate` runs the greedy cover on a sample until the
covered fraction reaches 1 - delta: an upper estimate (greedy is within a ln N factor of optimal).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from safepce.tabular.distributions import TaskDistribution
from safepce.theory.oracles import TrainingInputError


def _checked(radius: float, delta: float) -> tuple[float, float]:
    if not (np.isfinite(radius) and radius > 0):
        raise TrainingInputError(f"radius: expected a positive number; got {radius!r}")
    if not (0.0 < delta < 1.0):
        raise TrainingInputError(f"delta: expected a number in (0, 1); got {delta!r}")
    return float(radius), float(delta)


def max_points_in_intervals(sorted_values: np.ndarray, width: float, m: int) -> np.ndarray:
    """best[k] = the most sorted points that k closed intervals of length ``width`` can hold,
    for k = 0..m (dynamic programming, O(N) per k)."""
    n = sorted_values.size
    # left[i]: first point an interval whose right end is point i - 1 can reach
    left = np.searchsorted(sorted_values, sorted_values - width, side="left")
    left = np.concatenate([[0], left])            # index by i = 1..n (right end = point i - 1)
    previous = np.zeros(n + 1)
    best = [0]
    for _ in range(m):
        gain = np.empty(n + 1)
        gain[0] = 0.0
        ends = np.arange(1, n + 1)
        gain[1:] = previous[left[1:]] + ends - left[1:]
        current = np.maximum.accumulate(gain)
        best.append(int(current[-1]))
        previous = current
        if best[-1] == n:
            break
    return np.array(best)


def covering_number_sample(samples: np.ndarray, radius: float, delta: float) -> int:
    """Exact C for the empirical distribution of 1-D ``samples`` (intervals of length 2 radius)."""
    radius, delta = _checked(radius, delta)
    values = np.sort(np.asarray(samples, dtype=np.float64).reshape(-1))
    target = (1.0 - delta) * values.size
    m = 1
    while True:
        best = max_points_in_intervals(values, 2 * radius, m)
        hit = np.flatnonzero(best >= target - 1e-9)
        if hit.size:
            return int(hit[0])
        m *= 2


def covering_number_quantile(distribution: TaskDistribution, radius: float, delta: float,
                             low: float, high: float) -> int:
    """Exact C for a unimodal 1-D distribution on [low, high] with a closed-form CDF."""
    radius, delta = _checked(radius, delta)

    def best_mass(length: float) -> float:
        if length >= high - low:
            return 1.0

        def negative_mass(x):
            upper = distribution.cdf(x + length)
            lower = distribution.cdf(np.nextafter(x, -np.inf))  # include an atom at x
            return -(float(upper) - float(lower))

        grid = np.linspace(low, high - length, 257)
        start = grid[int(np.argmin([negative_mass(x) for x in grid]))]
        step = (high - low - length) / 256
        result = minimize_scalar(negative_mass, bounds=(max(low, start - step),
                                                        min(high - length, start + step)),
                                 method="bounded", options={"xatol": 1e-12})
        return max(-result.fun, -negative_mass(start), -negative_mass(low),
                   -negative_mass(high - length))

    m_max = math.ceil((high - low) / (2 * radius))
    lo, hi = 1, m_max
    while lo < hi:          # best_mass is non-decreasing in m: bisect
        mid = (lo + hi) // 2
        if best_mass(2 * radius * mid) >= 1 - delta - 1e-12:
            hi = mid
        else:
            lo = mid + 1
    return lo


def covering_number(distribution: TaskDistribution, radius: float, delta: float,
                    oracle: str = "parameter", method: str = "auto", n_samples: int = 200_000,
                    seed: int = 0) -> int:
    """C_radius(D, delta) for a 1-D family.

    ``oracle="parameter"`` measures balls in parameter units; ``"distance"`` in task distance,
    which needs the family's exact ``distance_scale`` (radius / scale in parameter units).
    ``method``: "quantile" (unimodal, closed-form CDF, bounded support), "sample", or "auto".

    Examples
    --------
    >>> from safepce.tabular import families
    >>> covering_number(families.make("runnable"), 0.01, 0.1, oracle="distance")
    30
    """
    radius, delta = _checked(radius, delta)
    if distribution.parameter_dim != 1:
        raise TrainingInputError("distribution: exact covering numbers need a 1-D parameter; use "
                                 "greedy_covering_estimate for other families")
    if oracle == "distance":
        if distribution.distance_scale is None:
            raise TrainingInputError("distribution: the distance oracle's exact covering number "
                                     "needs a family with a known distance_scale")
        radius = radius / distribution.distance_scale
    elif oracle != "parameter":
        raise TrainingInputError(f"oracle: expected 'parameter' or 'distance'; got {oracle!r}")
    support = (getattr(distribution, "low", None), getattr(distribution, "high", None))
    has_cdf = type(distribution).cdf is not TaskDistribution.cdf
    if method == "auto":
        method = "quantile" if has_cdf and None not in support else "sample"
    if method == "quantile":
        if not has_cdf or None in support:
            raise TrainingInputError(
                "method: 'quantile' needs a closed-form CDF and bounded support")
        return covering_number_quantile(distribution, radius, delta, *support)
    if method == "sample":
        samples = distribution.sample(n_samples, np.random.SeedSequence(seed))
        return covering_number_sample(samples[:, 0], radius, delta)
    raise TrainingInputError(f"method: expected 'auto', 'quantile' or 'sample'; got {method!r}")


def greedy_covering_estimate(distribution: TaskDistribution, coverage, delta: float,
                             n_samples: int = 20_000, seed: int = 0) -> int:
    """An upper estimate of C for any family: the greedy cover (Subroutine 3's rule) of a sample,
    run until at most delta N samples stay uncovered."""
    _checked(coverage.radius, delta)
    samples = distribution.sample(n_samples, np.random.SeedSequence(seed))
    return int(coverage.greedy_cover(samples, distribution, delta * n_samples).indices.size)
