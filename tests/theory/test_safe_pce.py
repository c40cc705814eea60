"""Safe-PCE and PCE: Eq. 6 against App. D's recursion, and the block-vectorised implementation
against a literal per-episode transcription of Algorithm 2 / PAPER.md sec. 8 on the same streams."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.tabular.distributions import GridworldNoise
from safepce.theory.algorithms.safe_pce import (
    PCE,
    SAFE_PCE_POOLED_GATE,
    THEORY,
    PresetError,
    SafePCE,
    experiment_mixture_weights,
    mixture_weights,
    mixture_weights_recursive,
    stage_limit,
)
from safepce.theory.harness import run_test_phase
from safepce.theory.oracles import DesignatedSafePolicy, ParameterCoverage
from safepce.theory.training import train

H = 600


@given(v_s=st.floats(0.05, 1.0), eps=st.floats(1e-5, 1e-3), gamma=st.floats(0.5, 0.95))
def test_eq6_closed_form_equals_the_recursion(v_s, eps, gamma):
    L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
    closed = mixture_weights(v_s, eps, L, gamma, 25)
    recursive = mixture_weights_recursive(v_s, eps, L, gamma, 25)
    assert np.allclose(closed, recursive, rtol=1e-9, atol=1e-12)
    kappa = (4 * L + 9) * eps
    if v_s > max(kappa, 2 * eps * (L + 2)):
        # increasing towards the fixed point 1 - kappa / v_s (App. D)
        assert np.all(np.diff(closed) > 0) and closed[-1] < 1 - kappa / v_s + 1e-12
        limit = mixture_weights(v_s, eps, L, gamma, 3000)[-1]
        assert limit == pytest.approx(1 - kappa / v_s, rel=1e-6)
        assert stage_limit(v_s, eps, L) == pytest.approx(
            math.log(eps) / math.log((2 * v_s + kappa) / (3 * v_s)))


def test_theory_constants_are_vacuous_at_experiment_scale():
    """PAPER.md sec. 6: gamma 0.9 gives L = 190 and kappa = 769 eps; with eps = 0.00375 and a
    safe margin of 0.05 (paper units) alpha_1 < 0 and no weight update is allowed."""
    L = 190.0
    assert mixture_weights(0.05, 0.00375, L, 0.9, 1)[1] < 0
    assert stage_limit(0.05, 0.00375, L) == -1.0


def test_experiment_weights_by_hand():
    slack, eps = 0.5, 0.01
    alpha = experiment_mixture_weights(slack, eps, 1.0, 3)
    a1 = (0.5 - 0.02) / (0.5 - 0.02 + 2)
    a2 = 3 * 0.5 * a1 / ((a1 + 2) * 0.5 + 3 * 0.01)
    assert alpha.tolist() == pytest.approx([0.0, a1, a2, 3 * 0.5 * a2 / ((a2 + 2) * 0.5 + 0.03)])


# --- the literal reference -------------------------------------------------------------------


def reference_run(training, task, units, n_episodes, seed, preset, pce=False, eps=None,
                  delta=None, gate="stage"):
    """Algorithm 2 (or 4) one episode at a time, written from PAPER.md without the block logic.
    ``gate``: the pooled pi_s test waits until the current stage ("stage", the authors' code)
    or the pool ("pooled") holds min_n episodes.
    Returns the per-episode (candidate, alpha) deployed and the list of eliminations."""
    simulator_seed = np.random.SeedSequence(seed).spawn(2)[0]
    b, gamma = units.budgets[0], units.gamma
    if preset == "theory":
        L = 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2
        to_u = units.reward_value_to_paper
        to_v = units.cost_value_to_paper

        def signals(R, C):
            return R / units.reward_scale, (b * (1 - gamma**H) - C) / units.utility_scale[0]

        def widths(n, pooled):
            w = math.sqrt(2 * math.log(4 * n_episodes / delta) / (n * (1 - gamma) ** 2)) \
                + eps * (L + 1)
            return w, w
        min_n = 1
    else:
        L = None
        to_u = to_v = np.asarray

        def signals(R, C):
            return R, C
        if pce:
            def widths(n, pooled):
                return math.sqrt(3000 / n) + 0.8, math.sqrt(600 / n) + 0.1
            min_n = 100
        else:
            def widths(n, pooled):
                return (math.sqrt(4000 / n) + 0.08,
                        math.sqrt((150 if pooled else 300) / n) + 0.01)
            min_n = 1000
    u, v = to_u(training.reward_values), to_v(training.cost_values)
    u_s, v_s = to_u(training.safe_reward_values), to_v(training.safe_cost_values)
    alive = list(range(u.size))
    pick = lambda: max(alive, key=lambda i: (u[i], -i))  # noqa: E731
    current, m, alpha, tried = pick(), 0, 0.0, 1
    stage, pool = [], []
    deployed, eliminated = [], []
    for k in range(n_episodes):
        if current is None:
            mixture = tabular.Mixture.of([training.safe_policy], [1.0])
        elif pce:
            mixture = tabular.Mixture.of([training.policies[current]], [1.0])
        else:
            mixture = tabular.Mixture.of([training.policies[current], training.safe_policy],
                                         [alpha, 1 - alpha])
        deployed.append((current, 1.0 if pce else alpha))
        run = tabular.simulate(task, mixture, 1, H, seed=simulator_seed, first_episode=k)
        R, C = signals(run.reward_return[0], run.cost_return[0])
        if current is None:
            continue
        stage.append((R, C))
        if not pce and alpha == 0.0:
            pool.append((R, C))
        u_pred = u[current] if pce else alpha * u[current] + (1 - alpha) * u_s[current]
        v_pred = v[current] if pce else alpha * v[current] + (1 - alpha) * v_s[current]
        pooled = (not pce and alpha == 0.0 and tried > 1 and preset != "theory")
        data = np.array(pool if pooled else stage)
        n = len(data)
        w_r, w_c = widths(n, pooled)
        gate_count = len(stage) if pooled and gate == "stage" else n
        if gate_count >= min_n and (abs(data[:, 0].mean() - u_pred) > w_r
                           or abs(data[:, 1].mean() - v_pred) > w_c):
            eliminated.append((k + 1, current))
            alive.remove(current)
            current = pick() if alive else None
            tried += 1
            m, alpha, stage = 0, 0.0, []
            continue
        if pce:
            continue
        if preset == "theory":
            length = (32 * math.log(4 * n_episodes / delta) / ((1 - gamma) ** 2 * v_pred**2)
                      if v_pred > 0 else math.inf)
            limit = stage_limit(v_s[current], eps, L)
            next_alpha = min(1.0, max(0.0, mixture_weights(v_s[current], eps, L, gamma,
                                                           m + 1)[m + 1]))
        else:
            slack = b - v_pred
            length = min(max(100 / slack**2 if slack else math.inf, 1000), 5200)
            limit = math.log(0.01) / math.log(2 / 3)
            next_alpha = experiment_mixture_weights(b - v_s[current], 0.01, 1.0, m + 1)[m + 1]
        if len(stage) - 2 >= length and m <= limit and next_alpha > 0:
            m, alpha, stage = m + 1, next_alpha, []
    return deployed, eliminated


@pytest.fixture(scope="module")
def setting():
    D = GridworldNoise()
    training = train(D, ParameterCoverage(0.005), 0.05, seed=0,
                     safe_oracle=DesignatedSafePolicy(0.4), progress=False)
    return training, D.build(training.cover_parameters[0]).utility_form


@pytest.mark.parametrize(("algorithm", "noise", "episodes"),
                         [("safe-pce", 0.31864008, 8000), ("safe-pce", 0.33084822, 6000),
                          ("safe-pce-pooled-gate", 0.31864008, 8000),
                          ("pce", 0.33994760, 4000), ("safe-pce-theory", 0.3, 300),
                          ("pce-theory", 0.33, 300)])
def test_block_implementation_equals_the_literal_one(setting, algorithm, noise, episodes):
    training, units = setting
    task = tabular.gridworld(noise)
    theory = algorithm.endswith("theory")
    kwargs = dict(preset=THEORY, eps=0.00375, delta=0.05) if theory else {}
    gate = "stage"
    if algorithm == "safe-pce-pooled-gate":
        kwargs, gate = dict(preset=SAFE_PCE_POOLED_GATE), "pooled"
    cls = PCE if algorithm.startswith("pce") else SafePCE
    record = run_test_phase(cls(training, units, H, **kwargs), task, episodes, H, seed=7)
    deployed, eliminated = reference_run(training, task, units, episodes, 7,
                                         "theory" if theory else "paper-experiment",
                                         pce=cls is PCE, eps=0.00375, delta=0.05, gate=gate)
    events = record.log["events"]
    assert [(e["episode"], e["candidate"]) for e in events if e["event"] == "eliminate"] == \
        eliminated
    if algorithm == "safe-pce":
        # the authors' gate: every candidate after the first is tested only after a pi_s-only
        # stage of 1,000 episodes, so eliminations are at least 1,000 episodes apart
        episodes_at = [e["episode"] for e in events if e["event"] == "eliminate"]
        assert all(b - a >= 1000 for a, b in zip(episodes_at, episodes_at[1:], strict=False))
    safe_cost = tabular.evaluate(task, training.safe_policy).cost_value
    own_cost = [tabular.evaluate(task, policy).cost_value for policy in training.policies]
    expected_values = [safe_cost if candidate is None
                       else alpha * own_cost[candidate] + (1 - alpha) * safe_cost
                       for candidate, alpha in deployed]
    assert np.allclose(record.cost_value, expected_values, atol=1e-12)


def test_theory_preset_stays_on_the_safe_policy(setting):
    training, units = setting
    task = tabular.gridworld(0.31)
    record = run_test_phase(SafePCE(training, units, H, preset=THEORY, eps=0.00375,
                                    delta=0.05), task, 5000, H, seed=1)
    assert record.safe_only.all()
    assert np.allclose(record.cost_value, tabular.evaluate(task, training.safe_policy).cost_value)
    assert record.log["constants"]["preset"] == "theory"


def test_presets_are_validated(setting):
    training, units = setting
    with pytest.raises(PresetError, match="^preset"):
        SafePCE(training, units, H, preset="tuned")
    with pytest.raises(PresetError, match="eps, delta"):
        SafePCE(training, units, H, preset=THEORY)
