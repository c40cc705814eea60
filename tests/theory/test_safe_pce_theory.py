"""Safe-PCE's ``theory`` preset where its constants bind: an independent, per-episode
transcription of Algorithm 2 (Ni & Kamgarpour 2026, arXiv:2601.21845) computes its own widths
(Ineq. 5), stage lengths, mixture weights (App. D's recursion) and m(l) (Eq. 7) from the
paper's formulas, and must reproduce the block implementation's every deployment and
elimination on families where wrong candidates are eliminated on both sides of the test and
stages advance. Each of these bugs turns a test here red: a halved stage length, a shrunk log
term in the width, a one-sided test, a dropped positive part of the regret (Eq. 1)."""

import math

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds.hard_instance import hard_family
from safepce.tabular.distributions import arms_family
from safepce.theory.algorithms.safe_pce import PCE, THEORY, SafePCE
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
from safepce.theory.training import train

CHUNK = 4096


def paper_reference(training, task, units, n_episodes, horizon, seed, eps, delta, pce=False):
    """Algorithm 2 (or Algorithm 4 with ``pce``), one decision per episode, in paper units.

    Episodes are simulated speculatively in chunks under the current deployment (the
    simulator's stream of episode k does not depend on how episodes are batched) and consumed
    one at a time; a chunk's tail is discarded when the deployment changes.
    Returns (per-episode (candidate, alpha), eliminations as (episode, candidate, side),
    stage advances as (episode, candidate, m, alpha)).
    """
    gamma, budget = units.gamma, units.budgets[0]
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2                   # Lemma C.3
    log_term = math.log(4 * n_episodes / delta)
    u = np.asarray(units.reward_value_to_paper(training.reward_values))
    v = np.asarray(units.cost_value_to_paper(training.cost_values))
    u_s = np.asarray(units.reward_value_to_paper(training.safe_reward_values))
    v_s = np.asarray(units.cost_value_to_paper(training.safe_cost_values))

    def weights(vs):
        """alpha_{l,0..} by App. D's recursion from alpha_{l,1} (Eq. 6), clipped to [0, 1]."""
        kappa = (4 * L + 9) * eps
        first = (vs - 2 * eps * (L + 2)) / (vs - 2 * eps * (L + 2) + 2 / (1 - gamma))
        alphas = [0.0, first]
        for _ in range(200):
            a = alphas[-1]
            alphas.append(a * 3 * vs / ((2 + a) * vs + kappa))
        return [min(1.0, max(0.0, a)) for a in alphas]

    def stage_cap(vs):
        """m(l) = log_{C_l} eps with C_l = (2 v_s + kappa) / (3 v_s) (Eq. 7); none if C_l >= 1."""
        ratio = (2 * vs + (4 * L + 9) * eps) / (3 * vs)
        return math.log(eps) / math.log(ratio) if 0 < ratio < 1 else -1.0

    alive = list(range(u.size))
    current = max(alive, key=lambda i: (u[i], -i))                      # optimism, Alg. 2
    m, alpha, alphas = 0, 0.0, weights(v_s[current])
    n = sum_r = sum_c = 0.0
    deployed, eliminated, stages, directions = [], [], [], []
    k = 0
    while k < n_episodes:
        if current is None:
            policies, mix = [training.safe_policy], [1.0]
        elif pce:
            policies, mix = [training.policies[current]], [1.0]
        else:
            policies, mix = [training.policies[current], training.safe_policy], [alpha, 1 - alpha]
        size = min(CHUNK, n_episodes - k)
        run = tabular.simulate(task, tabular.Mixture.of(policies, mix), size, horizon,
                               seed=np.random.SeedSequence(seed).spawn(2)[0], first_episode=k)
        for j in range(size):
            deployed.append((current, 1.0 if pce else alpha))
            episode = k + j + 1
            if current is None:
                continue
            R = run.reward_return[j] / units.reward_scale                 # Eq. 4, paper units
            C = (budget * (1 - gamma**horizon) - run.cost_return[j]) / units.utility_scale[0]
            n, sum_r, sum_c = n + 1, sum_r + R, sum_c + C
            a = 1.0 if pce else alpha
            u_pred = a * u[current] + (1 - a) * u_s[current]            # Eq. 3
            v_pred = a * v[current] + (1 - a) * v_s[current]
            width = math.sqrt(2 * log_term / (n * (1 - gamma) ** 2)) + eps * (L + 1)   # Ineq. 5
            gaps = (("reward", sum_r / n - u_pred), ("constraint", sum_c / n - v_pred))
            sides = [name for name, gap in gaps if abs(gap) > width]
            if sides:
                eliminated.append((episode, current, "+".join(sides)))
                directions.append({name + ("+" if gap > 0 else "-") for name, gap in gaps
                                   if abs(gap) > width})
                alive.remove(current)
                current = max(alive, key=lambda i: (u[i], -i)) if alive else None
                if current is not None:
                    alphas = weights(v_s[current])
                m, alpha, n, sum_r, sum_c = 0, 0.0, 0.0, 0.0, 0.0
                break
            if pce:
                continue
            length = 32 * log_term / ((1 - gamma) ** 2 * v_pred**2) if v_pred > 0 else math.inf
            if n - 2 >= length and m <= stage_cap(v_s[current]) and alphas[m + 1] > 0:
                m, alpha = m + 1, alphas[m + 1]
                stages.append((episode, current, m, alpha))
                n, sum_r, sum_c = 0.0, 0.0, 0.0
                break
        k = len(deployed)
    paper_reference.directions = directions      # which side and sign failed, per elimination
    return deployed, eliminated, stages


def trained(family, radius, delta):
    training = train(family, DistanceCoverage(radius), delta, seed=0,
                     safe_oracle=WorstCaseSafePolicy(xi=0.0), progress=False)
    return training, family.tasks[0].utility_form


@pytest.fixture(scope="module")
def arms():
    family = arms_family(4, gamma=0.5)
    return family, *trained(family, 1e-3, 0.05)


def check_against_reference(training, units, task, n_episodes, horizon, seed, eps, delta,
                            pce=False):
    cls = PCE if pce else SafePCE
    algorithm = cls(training, units, horizon, preset=THEORY, eps=eps, delta=delta)
    record = run_test_phase(algorithm, task, n_episodes, horizon, seed=seed)
    deployed, eliminated, stages = paper_reference(training, task, units, n_episodes, horizon,
                                                   seed, eps, delta, pce=pce)
    events = record.log["events"]
    assert [(e["episode"], e["candidate"], e["test"]) for e in events
            if e["event"] == "eliminate"] == eliminated
    assert [(e["episode"], e["candidate"], e["m"]) for e in events if e["event"] == "stage"] == \
        [s[:3] for s in stages]
    assert [e["alpha"] for e in events if e["event"] == "stage"] == pytest.approx(
        [s[3] for s in stages], rel=1e-12)
    # every episode's exact values are those of the reference's deployment
    own = {i: tabular.evaluate(task, p) for i, p in enumerate(training.policies)}
    safe = tabular.evaluate(task, training.safe_policy)
    expected_cost = [safe.cost_value if c is None else a * own[c].cost_value
                     + (1 - a) * safe.cost_value for c, a in deployed]
    assert np.allclose(record.cost_value, expected_cost, rtol=0, atol=1e-12)
    return record, deployed, eliminated, stages


@pytest.mark.parametrize("test_task", [1, 2, 3])
def test_arms_family_eliminates_on_both_sides_like_the_paper(arms, test_task):
    family, training, units = arms
    record, _, eliminated, stages = check_against_reference(
        training, units, family.tasks[test_task], 60_000, 40, test_task, 1e-3, 0.05)
    # task j tries candidates 0 .. j-1 first (equal V*, optimism by index) and eliminates all
    assert [c for _, c, _ in eliminated] == list(range(test_task))
    sides = {side for _, _, side in eliminated}
    assert sides == ({"reward"} if test_task == 1 else {"reward", "constraint"})
    assert len(stages) >= 10 and not record.violated.any()


def four_directions_family():
    """Four one-state tasks (actions: safe, an arm, and a trap (reward 1, cost 2) that fixes the
    normalising scales), budget 0.6 per step, gamma 0.5, whose wrong candidates fail the test in
    each of its four directions. V* orders them T3 (1.08) > T2 (1.02) > T0 (0.857) > T1 (0.6),
    so T3's candidate is tried first everywhere:

    * on T2 pi_s earns 0.3 per step where T3 predicts 0: reward above the prediction;
    * on T0 the safe action costs 0.3 where T3 predicts 0: utility below;
    * on T1 T3's arm is poorer (reward below), T2's pi_s part predicts reward that T1 does not
      pay (reward below), and T0's candidate predicts the safe action's cost 0.3 where T1's is
      free: utility above.
    """
    P = np.ones((1, 3, 1))

    def task(safe_reward, safe_cost, arm_reward):
        r = np.array([[safe_reward, arm_reward, 1.0]])
        cost = np.array([[safe_cost, 1.0, 2.0]])
        return tabular.CMDP(P, r, cost, 0.6 / 0.5, np.ones(1), 0.5)

    return tabular.FiniteUniform([task(0.0, 0.3, 1.0),      # T0
                                  task(0.0, 0.0, 0.5),      # T1
                                  task(0.3, 0.0, 0.3),      # T2
                                  task(0.0, 0.0, 0.9)])     # T3


def test_every_direction_of_the_two_sided_test_eliminates():
    """A one-sided reward or utility test (in either direction) changes these runs."""
    family = four_directions_family()
    training, units = trained(family, 1e-3, 0.05)
    seen = []
    for index in (0, 1, 2):
        _, _, eliminated, _ = check_against_reference(
            training, units, family.tasks[index], 40_000, 30, index, 1e-3, 0.05)
        assert eliminated
        seen += paper_reference.directions
    assert {"reward+", "reward-", "constraint+", "constraint-"} <= set().union(*seen)


def test_pce_regret_keeps_the_positive_part(arms):
    """PCE deploys candidate 0 alone; on task 2 candidate 0's arm is costly,
    so V_r(pi_0) = 1.2 > V* = 0.96: those episodes add 0 regret (Eq. 1's [.]_+), not -0.24."""
    family, training, units = arms
    task = family.tasks[2]
    record, deployed, eliminated, _ = check_against_reference(
        training, units, task, 30_000, 40, 5, 1e-3, 0.05, pce=True)
    assert eliminated and eliminated[0][1] == 0
    optimum = tabular.solve(task).reward_value
    values = {i: tabular.evaluate(task, p).reward_value for i, p in enumerate(training.policies)}
    assert values[0] > optimum + 0.2
    expected = sum(max(optimum - values[c], 0.0) for c, _ in deployed)
    assert record.cumulative_regret[-1] == pytest.approx(expected, rel=1e-9)
    assert record.violated.any()            # PCE is unsafe by design


def test_hard_family_eliminates_and_advances_like_the_paper():
    """App. G's family (m = 1, gamma 0.75, xi 0.3, eps 0.2, c1 1.8, c3 20), cover radius
    1e-5: on the null task the optimistic candidate (task 1's optimum) is eliminated by the
    constraint side after ~1.1e6 episodes and about ten stage advances."""
    family = hard_family(1, 0.75, 0.3, 0.2, c1=1.8, c3=20)
    training, units = trained(family.distribution, 1e-5, 0.05)
    record, _, eliminated, stages = check_against_reference(
        training, units, family.tasks[0], 1_300_000, 40, 0, 1e-5, 0.05)
    assert [(c, side) for _, c, side in eliminated] == [(int(np.flatnonzero(
        training.cover_parameters[:, 0] == 1)[0]), "constraint")]
    assert len(stages) >= 8 and not record.violated.any()


@pytest.mark.parametrize("eps", [1e-3, 0.03])
def test_stage_limit_of_eq_7_binds_on_a_slack_task(eps):
    """A task whose optimum has slack keeps every stage short (v_{l,m} >= alpha v_l > 0), so the
    run reaches m(l) = log_{C_l} eps (Eq. 7): the weight stops growing after exactly
    floor(m(l)) + 1 advances, short of App. D's fixed point 1 - kappa / v_s."""
    P = np.ones((1, 2, 1))
    task = tabular.CMDP(P, np.array([[0.0, 0.8]]), np.array([[0.0, 0.5]]), 0.6 / 0.5,
                        np.ones(1), 0.5)
    training, units = trained(tabular.FiniteUniform([task]), eps, 0.05)
    record, _, eliminated, stages = check_against_reference(
        training, units, task, 400_000, 20, 3, eps, 0.05)
    L = 1 / 0.5 + 2 * 0.5 / 0.25
    v_s = float(units.cost_value_to_paper(training.safe_cost_values[0]))
    kappa = (4 * L + 9) * eps
    cap = math.log(eps) / math.log((2 * v_s + kappa) / (3 * v_s))
    assert not eliminated and len(stages) == math.floor(cap) + 1
    assert stages[-1][0] < 300_000 and record.log["final_alpha"] < 1 - kappa / v_s
