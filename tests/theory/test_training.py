"""Algorithm 1 (PAPER.md section 2): its rules recounted independently; Lemma 3.5 exactly."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from safepce import tabular
from safepce.bounds.covering import covering_number
from safepce.tabular.distributions import GridworldNoise, InvalidDistributionError, TaskDistribution
from safepce.theory.oracles import DesignatedSafePolicy, ParameterCoverage, SafePolicyError
from safepce.theory.training import (
    TrainingInputError,
    TrainingResult,
    check_lemma_3_5,
    initial_sample_size,
    stopping_statistic,
    train,
)

DELTA, RADIUS = 0.05, 0.005


@pytest.fixture(scope="module")
def paper_training():
    D = GridworldNoise()
    result = train(D, ParameterCoverage(RADIUS), DELTA, seed=0,
                   safe_oracle=DesignatedSafePolicy(0.4), progress=False)
    return D, result


def test_initial_sample_size():
    assert initial_sample_size(0.05) == math.ceil(math.log(0.05) ** 2 / 0.05**2) == 3590
    assert stopping_statistic(10, 10, 0.1) == math.inf


def test_rounds_follow_the_doubling_and_stopping_rules(paper_training):
    D, result = paper_training
    rounds = result.rounds
    assert rounds[0]["n"] == initial_sample_size(DELTA)
    for earlier, later in zip(rounds, rounds[1:], strict=False):
        assert later["n"] == 2 * earlier["n"]
        assert earlier["statistic"] > DELTA
    last = rounds[-1]
    assert last["statistic"] <= DELTA
    assert last["statistic"] == pytest.approx(math.sqrt(
        last["cover_size"] * math.log(2 * last["n"] / DELTA) / (last["n"] - last["cover_size"])))
    assert result.n_sampled == sum(r["n"] for r in rounds)
    # Recount the last round's coverage on the very same sample, by brute force.
    seeds = np.random.SeedSequence(0).spawn(30)
    theta = D.sample(last["n"], seeds[len(rounds) - 1])[:, 0]
    distance_to_cover = np.min(np.abs(theta[:, None] - result.cover_parameters[None, :, 0]), axis=1)
    uncovered = np.count_nonzero(distance_to_cover > RADIUS)
    assert uncovered == last["n_uncovered"] <= 3 * DELTA * last["n"]


def test_cover_resembles_the_published_one(paper_training):
    """PAPER.md sec. 7: about ten tasks ~0.01 apart between noise 0.25 and 0.35."""
    _, result = paper_training
    centres = np.sort(result.cover_parameters[:, 0])
    assert 8 <= centres.size <= 12
    assert 0.25 <= centres.min() and centres.max() <= 0.35
    assert np.allclose(np.diff(centres), 0.01, atol=0.0015)


def test_policy_value_set_is_exact(paper_training):
    """U_hat (Eq. 2): u_i, v_i are the optimum of M_i (checked with the other LP backend) and
    u_is, v_is are pi_s's exact values on M_i."""
    D, result = paper_training
    for i, theta in enumerate(result.cover_parameters):
        task = D.build(theta)
        reference = tabular.solve(task, backend="cvxpy")
        assert result.reward_values[i] == pytest.approx(reference.reward_value, abs=1e-6)
        assert result.cost_values[i] <= 1.5 + 1e-8
        safe = tabular.evaluate(task, result.safe_policy)
        assert result.safe_reward_values[i] == pytest.approx(safe.reward_value, abs=1e-9)
        assert result.safe_cost_values[i] == pytest.approx(safe.cost_value, abs=1e-9)


def test_lemma_3_5_on_heldout_tasks(paper_training):
    D, result = paper_training
    C = covering_number(D, RADIUS, DELTA)
    report = check_lemma_3_5(result, D, ParameterCoverage(RADIUS), n_heldout=1000, seed=1,
                             covering_number=C)
    assert report["heldout_coverage"] >= 1 - 6 * DELTA                  # Lemma 3.5.3
    assert result.cover_size <= report["cover_size_bound"] == 2 * C * math.log(1 / DELTA)
    assert report["prediction_error_max"] <= report["prediction_error_bound"]  # Lemma 3.5.1
    xi = float(result.safe_margin.min())
    L, eps, gamma = report["L"], report["eps_task_distance"], 0.9
    assert report["optimality_gap_max"] <= 4 * eps * L * (1 + 1 / (xi * (1 - gamma)))
    # pi_s (the noise-0.4 optimum) is feasible on every held-out task below noise 0.4 only:
    # D violates Assumption 3.3 in its upper tail (PAPER.md sec. 7).
    heldout = D.sample(1000, np.random.SeedSequence(1))[:, 0]
    assert (report["safe_policy_min_slack"] < 0) == bool(np.any(heldout > 0.4))


def test_covering_number_of_the_paper_distribution():
    """Independent closed form: the best interval of a Normal holding 1 - delta is centred,
    of length 2 z_{1 - delta/2} sigma; C = ceil(that / (2 radius))."""
    expected = math.ceil(2 * norm.ppf(1 - DELTA / 2) * 0.03 / (2 * RADIUS))
    assert covering_number(GridworldNoise(), RADIUS, DELTA) == expected == 12


def test_save_and_load_round_trip(paper_training, tmp_path):
    _, result = paper_training
    path = result.save(tmp_path / "training.npz")
    again = TrainingResult.load(path)
    for name in ("cover_parameters", "policies", "reward_values", "cost_values", "safe_policy",
                 "safe_reward_values", "safe_cost_values", "safe_margin"):
        assert np.array_equal(getattr(result, name), getattr(again, name))
    assert again.rounds == result.rounds and again.settings == result.settings
    assert again.build_distribution().to_dict() == GridworldNoise().to_dict()
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TrainingInputError, match="not a readable safepce training result"):
        TrainingResult.load(tmp_path / "junk.npz")


def test_same_seed_same_result_other_seed_other_sample():
    D = GridworldNoise()
    a = train(D, ParameterCoverage(0.01), 0.1, seed=3, safe_oracle=DesignatedSafePolicy(0.4),
              progress=False)
    b = train(D, ParameterCoverage(0.01), 0.1, seed=3, safe_oracle=DesignatedSafePolicy(0.4),
              progress=False)
    c = train(D, ParameterCoverage(0.01), 0.1, seed=4, safe_oracle=DesignatedSafePolicy(0.4),
              progress=False)
    assert np.array_equal(a.cover_parameters, b.cover_parameters)
    assert not np.array_equal(a.cover_parameters, c.cover_parameters)


@pytest.mark.parametrize("delta", [0.0, 1 / 3, 0.5, -0.1])
def test_delta_out_of_range_fails_before_sampling(delta):
    class Exploding(GridworldNoise):
        def sample(self, n, seed):
            if n > 1:
                raise AssertionError("sampled before validating delta")
            return super().sample(n, seed)

    with pytest.raises(TrainingInputError, match="^delta"):
        train(Exploding(), ParameterCoverage(0.01), delta, progress=False)


def test_unreachable_margin_is_a_clear_error():
    with pytest.raises(SafePolicyError, match="^xi"):
        train(GridworldNoise(), ParameterCoverage(0.01), 0.1,
              safe_oracle=DesignatedSafePolicy(0.4, xi=0.3), progress=False)


def test_distribution_yielding_invalid_tasks_fails_early():
    class Broken(TaskDistribution):
        parameter_names = ("noise",)

        def sample(self, n, seed):
            return np.full((n, 1), -0.5)

        def build(self, theta):
            return tabular.gridworld(float(theta[0]))

    with pytest.raises(InvalidDistributionError, match="invalid CMDP"):
        train(Broken(), ParameterCoverage(0.01), 0.1, progress=False)
