"""Checkers of guarantees for any test-time algorithm, to call inside a hypothesis test or plain
pytest (``safepce[testing]``), and a ``@given``-ready composite that trains a family.

Each checker runs the algorithm on the harness (exact per-episode values) and raises an
``AssertionError`` that names the task's size, the seed, the episode and the exact numbers when
the guarantee fails:

* :func:`check_safe_exploration`: every deployed policy is feasible (exact discounted cost <=
  budget, Lemma 4.5's property);
* :func:`check_regret_bound`: Reg(K) <= a bound the caller passes (e.g. Theorem 4.2's terms);
* :func:`check_output_accuracy`: pi_out, the mixture of the deployed policies, is eps-optimal
  and feasible after K episodes (Corollary 4.3's property).

:func:`trained_tasks` draws a family from a strategy, trains it (Algorithm 1, cached per family)
and draws a test task of it: ``(training, family, task)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from safepce.tabular import CMDP

from .harness import VIOLATION_TOLERANCE, RunRecord, TestTimeAlgorithm, run_test_phase
from .oracles import DistanceCoverage, GivenSafePolicy, WorstCaseSafePolicy
from .training import TrainingResult, train


def _describe(task: CMDP, seed) -> str:
    return (f"task with {task.n_states} states, {task.n_actions} actions, gamma {task.gamma}, "
            f"budget {float(task.budgets[0]):.6g} (seed {seed})")


def _run(make_algorithm: Callable[[], TestTimeAlgorithm], task: CMDP, n_episodes: int,
         seed: int, horizon: int) -> RunRecord:
    return run_test_phase(make_algorithm(), task, n_episodes, horizon, seed=seed)


def check_safe_exploration(make_algorithm: Callable[[], TestTimeAlgorithm], task: CMDP,
                           n_episodes: int, seed: int = 0, horizon: int = 50) -> RunRecord:
    """Every policy the algorithm deploys on ``task`` is feasible by exact evaluation."""
    record = _run(make_algorithm, task, n_episodes, seed, horizon)
    bad = np.flatnonzero(record.violated)
    if bad.size:
        k = int(bad[0])
        raise AssertionError(
            f"{record.algorithm} [{record.preset}] deployed an infeasible policy on a "
            f"{_describe(task, seed)}: episode {k + 1} has exact cost "
            f"{record.cost_value[k]:.6g} > budget {record.budget:.6g} "
            f"({bad.size} of {n_episodes} episodes violate)")
    return record


def check_regret_bound(make_algorithm: Callable[[], TestTimeAlgorithm], task: CMDP,
                       n_episodes: int, bound: float | Callable[[RunRecord], float],
                       seed: int = 0, horizon: int = 50) -> RunRecord:
    """Reg(K) (Eq. 1, task units) <= ``bound`` (a number, or a function of the run's record,
    e.g. Theorem 4.2's terms evaluated with the run's quantities)."""
    record = _run(make_algorithm, task, n_episodes, seed, horizon)
    limit = bound(record) if callable(bound) else float(bound)
    regret = float(record.cumulative_regret[-1])
    if regret > limit:
        raise AssertionError(f"{record.algorithm} [{record.preset}] on a "
                             f"{_describe(task, seed)}: Reg({n_episodes}) = {regret:.6g} > "
                             f"bound {limit:.6g}")
    return record


def check_output_accuracy(make_algorithm: Callable[[], TestTimeAlgorithm], task: CMDP,
                          n_episodes: int, eps: float, seed: int = 0,
                          horizon: int = 50) -> RunRecord:
    """pi_out = (1/K) sum_k pi_k is eps-optimal (task units) and feasible after K episodes."""
    record = _run(make_algorithm, task, n_episodes, seed, horizon)
    reward = float(record.reward_value.mean())
    cost = float(record.cost_value.mean())
    if record.optimal_value - reward > eps or cost > record.budget + VIOLATION_TOLERANCE:
        raise AssertionError(
            f"{record.algorithm} [{record.preset}] on a {_describe(task, seed)}: pi_out after "
            f"{n_episodes} episodes has reward gap {record.optimal_value - reward:.6g} "
            f"(eps {eps:.6g}) and cost {cost:.6g} (budget {record.budget:.6g})")
    return record


_TRAINED: dict = {}


def _trained(family, radius: float, delta: float) -> TrainingResult:
    """Algorithm 1 on ``family``, cached by the family's JSON description where it has one
    (registered families), so that examples drawing the same family train once."""
    try:
        key = (json.dumps(family.to_dict(), sort_keys=True), radius, delta)
    except NotImplementedError:
        key = (id(family), radius, delta)
    if key not in _TRAINED:
        if len(_TRAINED) > 64:
            _TRAINED.clear()
        # a family that names its Slater policy (tabular.strategies) needs no search for one
        given = getattr(family, "slater_policy", None)
        oracle = WorstCaseSafePolicy(xi=0.0) if given is None else GivenSafePolicy(given)
        _TRAINED[key] = (family, train(family, DistanceCoverage(radius), delta, seed=0,
                                       safe_oracle=oracle, progress=False))
    return _TRAINED[key][1]


@st.composite
def trained_tasks(draw, families: st.SearchStrategy, radius: float = 1e-3,
                  delta: float = 0.05):
    """(training, family, test task): a family drawn from ``families`` (a strategy of task
    distributions), trained by Algorithm 1 (distance oracle at ``radius``, worst-case O_s;
    cached per family), and a test task drawn from its D."""
    family = draw(families)
    training = _trained(family, radius, delta)
    theta = family.sample(1, draw(st.integers(0, 2**16)))[0]
    return training, family, family.build(theta)
