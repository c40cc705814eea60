"""Exact blocks (theory.exact_blocks) against the step simulator and against brute force."""

import copy
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from safepce.bounds.hard_instance import hard_family
from safepce.bounds.sample_complexity import episodes_to_accuracy
from safepce.tabular.errors import InputError
from safepce.tabular.outcomes import episode_outcomes
from safepce.tabular.policy import Mixture
from safepce.theory.algorithms.safe_pce import SCALED, THEORY, SafePCE
from safepce.theory.exact_blocks import run_exact_blocks, settle_episode
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.training import train

H = 40


@pytest.fixture(scope="module")
def cell():
    family = hard_family(1, 0.8, 0.6, 0.25, c1=2.0, c3=10, routing="flat")
    training = train(family.distribution, DistanceCoverage(1e-5), 0.01, seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)
    return family, training, family.tasks[0].utility_form


def algorithm(cell, preset=THEORY):
    _, training, units = cell
    return SafePCE(training, units, H, preset=preset, eps=1e-5, delta=0.01)


def stage_in_progress(cell, task, episodes, preset=THEORY):
    """An algorithm part-way through a mixed stage, driven by the exact-block runner."""
    family = cell[0]
    alg = algorithm(cell, preset)
    run_exact_blocks(alg, family.tasks[task], episodes, H, 3)
    alg.n_episodes = 10**7       # keep the stage open: widths use K = 1e7 from here on
    return alg


def deployed_outcomes(alg, task):
    d = alg.deployment()
    return episode_outcomes(task, Mixture(np.stack(d.policies), d.weights), H), d


@pytest.mark.parametrize("episodes", [120_000, 400_000])
def test_certified_block_is_sound_and_tight(cell, episodes):
    """No sequence of outcomes fails the test within the certified block; the sequence that
    repeats the binding extreme outcome fails just after it (so the bound is not loose)."""
    family = cell[0]
    alg = stage_in_progress(cell, 1, episodes)
    assert alg.alpha > 0 and alg.stage[2] > 0
    outcomes, d = deployed_outcomes(alg, family.tasks[1])
    ranges = ((outcomes.reward_return.min(), outcomes.reward_return.max()),
              (outcomes.cost_return.min(), outcomes.cost_return.max()))
    b = alg.certified_block(*ranges, 10**9)
    assert 64 < b < 10**9
    extremes = [np.argmax(outcomes.reward_return), np.argmin(outcomes.reward_return),
                np.argmax(outcomes.cost_return), np.argmin(outcomes.cost_return)]
    failed_after = []
    for index in extremes:
        for size in (b, b + max(2, b // 10**5)):
            trial = copy.deepcopy(alg)
            used = trial.observe(np.full(size, outcomes.reward_return[index]),
                                 np.full(size, outcomes.cost_return[index]))
            eliminated = any(e["event"] == "eliminate" for e in trial.events[len(alg.events):])
            if size == b:
                assert not eliminated and used == size
            elif eliminated:
                failed_after.append(used)
    assert failed_after and min(failed_after) > b


def test_observe_totals_equals_observe_on_a_certified_block(cell):
    family = cell[0]
    alg = stage_in_progress(cell, 0, 150_000)
    outcomes, _ = deployed_outcomes(alg, family.tasks[0])
    ranges = ((outcomes.reward_return.min(), outcomes.reward_return.max()),
              (outcomes.cost_return.min(), outcomes.cost_return.max()))
    limit = alg.deployment().episodes
    b = alg.certified_block(*ranges, limit)
    rng = np.random.default_rng(1)
    drawn = rng.choice(outcomes.size, size=b, p=outcomes.probability)
    by_steps, by_sums = copy.deepcopy(alg), copy.deepcopy(alg)
    assert by_steps.observe(outcomes.reward_return[drawn], outcomes.cost_return[drawn]) == b
    assert by_sums.observe_totals(outcomes.reward_return[drawn].sum(),
                                  outcomes.cost_return[drawn].sum(), b) == b
    assert by_sums.episode == by_steps.episode and by_sums.m == by_steps.m
    assert by_sums.alpha == by_steps.alpha
    np.testing.assert_allclose(by_sums.stage, by_steps.stage, rtol=1e-12)
    assert [e["event"] for e in by_sums.events] == [e["event"] for e in by_steps.events]


def test_exact_blocks_have_the_step_simulators_law(cell):
    """Two-sample Kolmogorov-Smirnov tests over 150 seeds per route (scaled preset f = 0.1, so
    eliminations happen within K = 20,000 at random episodes): first elimination episode and
    stage advances by K. A runner that skipped the per-episode test (certifying every block)
    is rejected by the same tests (p < 1e-6)."""
    family = cell[0]
    preset = replace(SCALED, scale=0.1)
    task = family.tasks[0]

    def statistics(run):
        events = run.log["events"]
        eliminations = [e["episode"] for e in events if e["event"] == "eliminate"]
        return (eliminations[0] if eliminations else 0,
                sum(e["event"] == "stage" for e in events))

    seeds = range(150)
    steps = np.array([statistics(run_test_phase(algorithm(cell, preset), task, 20_000, H, seed=s))
                      for s in seeds])
    blocks = np.array([statistics(run_exact_blocks(algorithm(cell, preset), task, 20_000, H, s))
                       for s in seeds])
    assert np.all(steps[:, 0] > 0) and np.all(blocks[:, 0] > 0)
    for column in range(2):
        assert stats.ks_2samp(steps[:, column], blocks[:, column]).pvalue > 1e-3

    class Careless(SafePCE):
        def certified_block(self, reward_range, cost_range, limit):
            return int(limit)

    careless = np.array([statistics(run_exact_blocks(
        Careless(cell[1], cell[2], H, preset=preset, eps=1e-5, delta=0.01), task, 20_000, H, s))
        for s in range(60)])
    assert stats.ks_2samp(steps[:, 0], careless[:, 0]).pvalue < 1e-6


def test_settle_episode_equals_episodes_to_accuracy_on_a_harness_record(cell):
    family = cell[0]
    preset = replace(SCALED, scale=0.1)
    for seed, eps in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 0.05)):
        record = run_test_phase(algorithm(cell, preset), family.tasks[0], 20_000, H, seed=seed)
        change = np.flatnonzero((np.diff(record.reward_value) != 0)
                                | (np.diff(record.cost_value) != 0)) + 1
        starts = np.concatenate([[0], change])
        sizes = np.diff(np.concatenate([starts, [record.reward_value.size]]))
        segments = np.column_stack([starts, sizes, record.reward_value[starts],
                                    record.cost_value[starts]])
        assert settle_episode(segments, record.optimal_value, record.budget, eps) == \
            episodes_to_accuracy(record, eps)


def test_settle_episode_by_hand():
    # V* = 1, eps = 0.25: deploy 0.5 for 2 episodes, then 1.0: pi_out(k) = (1 + (k-2))/k >= 0.75
    # from k = 4 on; a cost of 2 > budget 1 in episode 1 keeps pi_out infeasible until
    # (2 + 0.5 (k - 1))/k <= 1, i.e. k >= 3
    segments = np.array([[0, 1, 0.5, 2.0], [1, 1, 0.5, 0.5], [2, 10, 1.0, 0.5]])
    assert settle_episode(segments, 1.0, 1.0, 0.25) == 4
    assert settle_episode(segments, 1.0, 1.0, 0.5) == 3
    assert settle_episode(segments, 2.0, 1.0, 0.25) is None


def test_visits_until_adds_up(cell):
    family = cell[0]
    run = run_exact_blocks(algorithm(cell), family.tasks[0], 300_000, H, 4, family.loop_mask())
    assert run.visits_until(run.n_episodes, 0) == run.total_visits > 0
    assert run.visits_until(0, 0) == 0
    middle = [run.visits_until(150_001, s) for s in range(3)]
    assert 0 < min(middle) <= max(middle) < run.total_visits


def test_bad_input_is_refused(cell):
    family = cell[0]
    with pytest.raises(InputError, match="seed"):
        run_exact_blocks(algorithm(cell), family.tasks[0], 10, H, -1)
    with pytest.raises(InputError, match="algorithm"):
        run_exact_blocks(object(), family.tasks[0], 10, H, 0)
    with pytest.raises(InputError, match="n_episodes"):
        run_exact_blocks(algorithm(cell), family.tasks[0], 0, H, 0)


def test_fast_path_makes_the_same_draws_as_one_block_at_a_time(cell):
    """consume_certified (runs of blocks inside the algorithm) against the runner asking for
    one certified block at a time: the same block sizes, so the same draws and decisions."""
    family = cell[0]
    runs = [run_exact_blocks(algorithm(cell), family.tasks[0], 3_000_000, H, 5,
                             family.loop_mask(), fast=fast) for fast in (True, False)]
    assert runs[0].n_blocks == runs[1].n_blocks
    np.testing.assert_allclose(runs[0].segments, runs[1].segments, rtol=0, atol=0)
    for fast, slow in zip(runs[0].log["events"], runs[1].log["events"], strict=True):
        # the stage sums are accumulated in another order: gaps agree to round-off
        assert fast.keys() == slow.keys()
        for name, value in fast.items():
            if isinstance(value, float):
                assert value == pytest.approx(slow[name], rel=1e-12), name
            else:
                assert value == slow[name], name
    assert runs[0].total_visits == runs[1].total_visits
