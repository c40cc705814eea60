"""The algorithm registry: every entry builds from a training result with its preset's numbers,
presets are frozen objects, and keys and fields are checked."""

import dataclasses
import math

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular.distance import simulation_lemma_constant
from safepce.theory.algorithms import (
    REGISTRY,
    SAFE_PCE_EXPERIMENT,
    SafeMetaRL,
    UnknownAlgorithmError,
    make_algorithm,
    register,
)
from safepce.theory.algorithms.baselines import BaselineInputError
from safepce.theory.experiment import ExperimentSettings, experiment_training
from safepce.theory.harness import Deployment, TestTimeAlgorithm, run_test_phase


@pytest.fixture(scope="module")
def gridworld():
    return experiment_training(ExperimentSettings())


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_entry_builds_with_its_preset(gridworld, key):
    training, family = gridworld
    spec = REGISTRY[key]
    algorithm = make_algorithm(key, training, family, 600, 0.05)
    assert type(algorithm) is spec.cls
    assert algorithm.preset == spec.preset.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.preset.name = "changed"
    assert spec.describe()["preset_values"] == dataclasses.asdict(spec.preset)


@pytest.mark.parametrize(("key", "factor"), [("safe-pce-theory", 1.0), ("safe-pce-scaled", 0.01)])
def test_paper_unit_presets_take_eps_from_the_cover_and_their_factor(gridworld, key, factor):
    """eps = cover radius 0.005 (noise) x the gridworld's exact distance scale 0.75, times the
    preset's factor; L = 1/(1-gamma) + 2 gamma/(1-gamma)^2 at gamma 0.9 (= 190)."""
    training, family = gridworld
    constants = make_algorithm(key, training, family, 600, 0.05).constants
    assert constants.eps == pytest.approx(0.005 * 0.75 * factor, rel=1e-12)
    assert constants.scale == factor
    assert constants.L_reward == pytest.approx(1 / 0.1 + 2 * 0.9 / 0.01) == \
        simulation_lemma_constant(0.9)
    width, _ = constants.widths(100, 40_000)
    expected = factor * math.sqrt(2 * math.log(4 * 40_000 / 0.05) / (100 * 0.01)) + \
        0.005 * 0.75 * factor * 191
    assert float(width) == pytest.approx(expected, rel=1e-12)


def test_experiment_preset_numbers(gridworld):
    training, family = gridworld
    constants = make_algorithm("safe-pce", training, family, 600, 0.05).constants
    assert constants == SAFE_PCE_EXPERIMENT.constants(0.9)
    width_r, width_c = constants.widths(1000, 40_000)
    assert float(width_r) == pytest.approx(math.sqrt(4.0) + 0.08)
    assert float(width_c) == pytest.approx(math.sqrt(0.3) + 0.01)


def test_unknown_keys_and_fields_are_refused(gridworld):
    training, family = gridworld
    with pytest.raises(UnknownAlgorithmError, match="--algorithms"):
        make_algorithm("ppo", training, family, 600)
    with pytest.raises(tabular.InputError, match="registered already"):
        register("safe-pce", SafeMetaRL, None, "", "", "")
    tasks = training.cover_tasks(family)
    with pytest.raises(BaselineInputError, match="^batc"):
        SafeMetaRL(training, tasks, 600, batc=10)
    variant = SafeMetaRL(training, tasks, 600, batch=500)
    assert variant.batch == 500 and variant.preset == "paper-experiment*"


class AlwaysSafe(TestTimeAlgorithm):
    """A toy algorithm deploying pi_s alone under its own key ("pi_s", not "safe")."""

    name = "always-safe"

    def __init__(self, policy):
        self.policy = policy

    @classmethod
    def from_training(cls, training, family, horizon, preset, delta):
        return cls(training.safe_policy)

    def reset(self, n_episodes, seed):
        pass

    def deployment(self):
        return Deployment((self.policy,), np.ones(1), ("pi_s",), 10)

    def observe(self, reward_returns, cost_returns):
        return len(reward_returns)


def test_the_registry_declares_figures_and_the_safe_key(gridworld, monkeypatch):
    """Figure membership and pi_s's deployment key come from the registry: a new algorithm in no
    figure lands in figure2_other, and its safe-only episodes are counted under its own key
    (red when the harness keeps "safe": 0 safe-only episodes)."""
    from safepce.theory.algorithms import registry

    assert registry.figure_keys("figure2") == ("safe-pce", "safe-meta-rl", "dope-plus", "lb-sgd")
    assert set(registry.figure_keys("figure2_appendix")) == {
        "safe-pce", "pce", "lb-sgd", "dope", "dope-plus", "safe-pce-certified"}
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    register("always-safe", AlwaysSafe, SAFE_PCE_EXPERIMENT, "always pi_s", "#000000",
             "training (pi_s)", safe_key="pi_s")
    assert registry.figure_keys("figure2_other", ["safe-pce", "always-safe", "pce"]) == (
        "always-safe",)
    training, family = gridworld
    algorithm = make_algorithm("always-safe", training, family, 20)
    record = run_test_phase(algorithm, family.build([0.2]), 30, 20, seed=0)
    assert record.safe_only.all()
    with pytest.raises(Exception, match="figures: expected names among"):
        register("other", AlwaysSafe, SAFE_PCE_EXPERIMENT, "x", "#000000", "x",
                 figures=("figure3",))
