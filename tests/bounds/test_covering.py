"""Covering numbers (Def. 4.1) against brute force and closed forms."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.bounds.covering import (
    covering_number,
    covering_number_sample,
    greedy_covering_estimate,
    max_points_in_intervals,
)
from safepce.tabular.distributions import GridworldNoise, UniformInterval
from safepce.theory.oracles import ParameterCoverage, TrainingInputError


@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=9), width=st.floats(0.01, 0.5))
def test_dynamic_programme_equals_brute_force(values, width):
    """Some optimal interval starts at a sample point, so enumerate those placements."""
    x = np.sort(np.array(values))
    best = max_points_in_intervals(x, width, 3)
    for k in range(1, min(3, x.size) + 1):
        if k >= best.size:
            break
        brute = max(np.count_nonzero(np.any([(x >= x[s]) & (x <= x[s] + width) for s in starts],
                                            axis=0))
                    for starts in itertools.combinations(range(x.size), k))
        assert best[k] == brute


def test_uniform_closed_form():
    D = UniformInterval(0.0, 1.0, lambda p: tabular.gridworld(p * 0.5))
    for radius, delta in [(0.05, 0.1), (0.01, 0.05), (0.2, 0.3)]:
        expected = math.ceil((1 - delta) / (2 * radius) - 1e-12)
        assert covering_number(D, radius, delta, method="quantile") == expected
        assert abs(covering_number(D, radius, delta, method="sample", n_samples=100_000)
                   - expected) <= 1


def test_distance_oracle_rescales_by_the_exact_distance():
    D = GridworldNoise()
    assert covering_number(D, 0.75 * 0.005, 0.05, oracle="distance") == covering_number(
        D, 0.005, 0.05)


def test_greedy_estimate_is_an_upper_estimate():
    D = GridworldNoise()
    exact = covering_number(D, 0.005, 0.05)
    estimate = greedy_covering_estimate(D, ParameterCoverage(0.005), 0.05)
    assert exact <= estimate <= exact + 3
    assert covering_number_sample(D.sample(50_000, 0)[:, 0], 0.005, 0.05) in (exact - 1, exact,
                                                                               exact + 1)


def test_bad_input():
    with pytest.raises(TrainingInputError, match="^radius"):
        covering_number(GridworldNoise(), 0.0, 0.05)
    with pytest.raises(TrainingInputError, match="^delta"):
        covering_number(GridworldNoise(), 0.01, 1.0)
    with pytest.raises(TrainingInputError, match="^oracle"):
        covering_number(GridworldNoise(), 0.01, 0.1, oracle="euclid")
