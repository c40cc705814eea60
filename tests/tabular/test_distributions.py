"""Task distributions: sampling against closed forms, the exact distance scale, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.tabular.distributions import (
    FiniteUniform,
    GridworldNoise,
    InvalidDistributionError,
    UniformInterval,
    distribution_from_dict,
)


def test_gridworld_noise_sample_matches_its_cdf():
    D = GridworldNoise()
    x = D.sample(200_000, seed=3)[:, 0]
    assert x.min() >= 0.0 and x.max() <= 0.5
    assert abs(x.mean() - 0.3) < 4 * 0.03 / np.sqrt(x.size)
    for q in (0.25, 0.28, 0.3, 0.33, 0.36):
        # DKW: |F_n - F| <= 0.005 w.p. > 1 - 2 exp(-2 n 0.005^2) ~ 1 - 1e-4
        assert abs(np.mean(x <= q) - D.cdf(q)) < 0.005
    assert np.array_equal(D.sample(10, seed=1), D.sample(10, seed=1))
    clipped = GridworldNoise(mean=0.05, std=0.1).sample(100_000, seed=0)[:, 0]
    assert np.mean(clipped == 0.0) == pytest.approx(GridworldNoise(mean=0.05, std=0.1).cdf(0.0),
                                                    abs=0.005)


@given(p=st.floats(0.0, 0.5), q=st.floats(0.0, 0.5))
def test_gridworld_distance_scale_is_exact(p, q):
    """The interval shortcut of DistanceCoverage relies on d = 0.75 |p - q| exactly."""
    D = GridworldNoise()
    assert tabular.distance(D.build([p]), D.build([q])) == pytest.approx(
        D.distance_scale * abs(p - q), abs=1e-12)


def test_build_many_equals_build():
    D = GridworldNoise()
    thetas = D.sample(5, seed=2)
    for task, theta in zip(D.build_many(thetas), thetas, strict=True):
        assert np.array_equal(task.P, D.build(theta).P)
        assert task.budget == 1.5 and task.gamma == 0.9


def test_round_trip_through_json():
    D = GridworldNoise(mean=0.25, std=0.02, budget=2.0)
    again = distribution_from_dict(D.to_dict())
    assert np.array_equal(D.sample(7, seed=5), again.sample(7, seed=5))
    assert again.budget == 2.0


def test_finite_uniform_and_uniform_interval():
    tasks = [tabular.random_cmdp(3, 2, seed=s) for s in range(4)]
    D = FiniteUniform(tasks)
    counts = np.bincount(D.sample(40_000, seed=0)[:, 0].astype(int), minlength=4) / 40_000
    assert np.allclose(counts, 0.25, atol=4 * np.sqrt(0.25 * 0.75 / 40_000))
    assert D.build([2.0]) is tasks[2]
    U = UniformInterval(0.1, 0.2, lambda p: tabular.gridworld(p), name="noise")
    x = U.sample(1000, seed=1)[:, 0]
    assert x.min() >= 0.1 and x.max() <= 0.2
    assert U.cdf(0.15) == pytest.approx(0.5)


def test_bad_distributions_fail_early():
    with pytest.raises(InvalidDistributionError, match="^std"):
        GridworldNoise(std=0.0)
    with pytest.raises(InvalidDistributionError, match="^low, high"):
        GridworldNoise(low=0.5, high=0.2)
    with pytest.raises(InvalidDistributionError, match="gives an invalid CMDP"):
        UniformInterval(-1.0, -0.5, lambda p: tabular.gridworld(p))   # noise < 0
    with pytest.raises(InvalidDistributionError, match=r"^tasks\[1\]"):
        FiniteUniform([tabular.random_cmdp(3, 2, seed=0), tabular.random_cmdp(4, 2, seed=0)])
    with pytest.raises(InvalidDistributionError, match="^n"):
        GridworldNoise().sample(-1, seed=0)
