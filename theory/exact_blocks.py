"""Safe-PCE's test phase without stepping through episodes: exact blocks of outcome counts.

Where one episode under a fixed deployment has few distinct outcomes (reward return, cost
return, visits of counted states) -- the hard family of App. G: a path to a gate, a loop of
geometric length, a sink -- :func:`safepce.tabular.outcomes.episode_outcomes` gives their exact
probabilities, and n i.i.d. episodes are one multinomial vector of outcome counts.
:func:`run_exact_blocks` plays Safe-PCE (Algorithm 2) on such a task:

* a **certified block**: :meth:`~safepce.theory.algorithms.safe_pce.SafePCE.certified_block`
  bounds, from the outcomes' range alone, how many episodes no sequence of outcomes could fail
  the elimination test within (line 7 of Algorithm 2, Ineq. 5's width); that many episodes are
  drawn as one multinomial count vector and handed over as sums
  (:meth:`~safepce.theory.algorithms.safe_pce.SafePCE.observe_totals`). Their decision (no
  elimination; a stage advance at the block's end when due) is the same for every order, so
  only the counts matter;
* otherwise (fewer than ``MIN_CERTIFIED`` episodes certified) the outcomes are drawn one per
  episode (i.i.d. categorical) and handed over in order (:meth:`observe`), which stops at the
  first failed test or stage advance exactly as with the step simulator; the episodes after that
  point are discarded unseen (the next deployment draws fresh ones).

Both kinds draw the episodes' outcomes from their exact law, so every run has the same
distribution as :func:`safepce.theory.harness.run_test_phase` with the numba step simulator (not
the same numbers: the random streams differ). A worst-case order can move a stage's mean by
(block / episodes so far) x (the outcomes' spread) while the width shrinks like 1/sqrt(n), so
certified blocks grow like the square root of the stage's episodes so far: a run costs about
sqrt(stage length) draws per stage instead of K episodes.

The record keeps the deployed policies' exact values per segment (runs of equal deployment), from
which :func:`settle_episode` finds the least k after which pi_out (the running mixture of the
deployed policies) stays eps-optimal and feasible, exactly, and the counted visits per block, from
which :meth:`BlockRun.visits_until` draws the visits of the first k episodes given the block's
counts (multivariate hypergeometric: given the counts, the order of a block's episodes is
uniform).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from safepce import tabular
from safepce.tabular import CMDP
from safepce.tabular.errors import InputError, positive_int
from safepce.tabular.outcomes import Outcomes, episode_outcomes, mix_outcomes

from .harness import VIOLATION_TOLERANCE

#: a certified block shorter than this is not worth a multinomial draw: materialise instead
MIN_CERTIFIED = 64
#: episodes drawn at once when materialising
MATERIALISE = 4096


@dataclass
class BlockRun:
    """One exact-block run.

    ``segments``: (n, 4) float array of (first episode index, episodes, V_r, V_cost) of the
    deployed mixture (task units, exact); ``blocks``: per block (first episode index, episodes,
    visits values, their counts); ``certified_episodes``: episodes consumed as sums."""

    optimal_value: float
    budget: float
    horizon: int
    seed: int
    n_episodes: int
    segments: np.ndarray
    blocks: list = field(repr=False)
    certified_episodes: int
    n_blocks: int
    log: dict = field(default_factory=dict, repr=False)

    @property
    def violated(self) -> bool:
        """Any deployed policy infeasible (exact value above the budget)."""
        return bool(np.any(self.segments[:, 3] > self.budget + VIOLATION_TOLERANCE))

    @property
    def total_visits(self) -> int:
        return int(sum(int(values @ counts) for _, _, values, counts in self.blocks))

    def settle_episode(self, eps: float) -> int | None:
        """:func:`settle_episode` of this run (eps in task units)."""
        return settle_episode(self.segments, self.optimal_value, self.budget, eps)

    def visits_until(self, k: int, seed) -> int:
        """Counted visits in the first ``k`` episodes: exact sums of the blocks before the one
        holding episode k, plus a multivariate hypergeometric draw (from ``seed``) of that
        block's first episodes given its counts."""
        if not 0 <= k <= self.n_episodes:
            raise InputError(f"k: expected an episode count in [0, {self.n_episodes}]; got {k}")
        total = 0
        rng = np.random.default_rng(seed)
        for start, size, values, counts in self.blocks:
            if start + size <= k:
                total += int(values @ counts)
            elif start < k:
                drawn = rng.multivariate_hypergeometric(counts, k - start)
                total += int(values @ drawn)
        return total


def settle_episode(segments: np.ndarray, optimal_value: float, budget: float,
                   eps: float) -> int | None:
    """The least k such that pi_out(k') = (1/k') sum_{j<=k'} pi_j is eps-optimal (V*_r - V_r <=
    eps) and feasible (V_cost <= budget + tolerance) for every k' in [k, K], from piecewise-constant
    deployed values (``segments`` rows (first episode index, episodes, V_r, V_cost), task units,
    like ``optimal_value``, ``budget`` and ``eps``); None if pi_out(K) is not. Within a segment
    starting after k0 episodes with sums A, the mean (A + (k - k0) v)/k crosses a threshold T at
    most once (it is monotone in k), so the bad k' of each segment form one interval found by
    one division. Same definition as
    :func:`safepce.bounds.sample_complexity.episodes_to_accuracy` on a harness record."""
    target = optimal_value - eps
    limit = budget + VIOLATION_TOLERANCE
    last_bad = 0
    A_r = A_c = 0.0
    end = 0
    for k0, n, v_r, v_c in segments:
        k0, n = int(k0), int(n)
        first, end = k0 + 1, k0 + n
        # reward: good iff (v_r - target) k >= k0 v_r - A_r
        alpha, beta = v_r - target, k0 * v_r - A_r
        if alpha > 0:
            bad_to = min(end, math.ceil(beta / alpha) - 1)
        elif alpha < 0:
            bad_to = end if math.floor(beta / alpha) + 1 <= end else 0
        else:
            bad_to = end if beta > 0 else 0
        if bad_to >= first:
            last_bad = max(last_bad, bad_to)
        # cost: good iff (v_c - limit) k <= k0 v_c - A_c
        alpha, beta = v_c - limit, k0 * v_c - A_c
        if alpha > 0:
            bad_to = end if math.floor(beta / alpha) + 1 <= end else 0
        elif alpha < 0:
            bad_to = min(end, math.ceil(beta / alpha) - 1)
        else:
            bad_to = end if beta < 0 else 0
        if bad_to >= first:
            last_bad = max(last_bad, bad_to)
        A_r += n * v_r
        A_c += n * v_c
    if last_bad >= end:
        return None
    return last_bad + 1


def run_exact_blocks(algorithm, task: CMDP, n_episodes: int, horizon: int, seed: int,
                     count_mask=None, optimal_value: float | None = None,
                     fast: bool = True) -> BlockRun:
    """Safe-PCE (or PCE) on ``task`` for ``n_episodes`` episodes of ``horizon`` steps, drawn in
    exact blocks (module docstring). ``count_mask``: states whose steps are counted as visits
    (e.g. :meth:`safepce.bounds.hard_instance.HardFamily.loop_mask`). ``seed`` (a non-negative
    int) fixes every draw; the algorithm gets the same child seed as under
    :func:`~safepce.theory.harness.run_test_phase`. ``fast``: consume runs of certified blocks
    inside the algorithm (:meth:`~safepce.theory.algorithms.safe_pce.SafePCE.consume_certified`,
    the same draws in the same order as ``fast=False``, which asks for one block at a time)."""
    if not isinstance(task, CMDP) or not task.single_constraint:
        raise tabular.InvalidCMDPError("task", "a tabular.CMDP with one constraint")
    positive_int("n_episodes", n_episodes)
    positive_int("horizon", horizon)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer; got {seed!r}")
    if not hasattr(algorithm, "certified_block"):
        raise InputError(f"algorithm: {type(algorithm).__name__} has no certified blocks "
                         "(exact blocks run Safe-PCE / PCE only)")
    with threadpool_limits(limits=1, user_api="blas"):
        if optimal_value is None:
            optimal_value = tabular.solve(task, backend="auto").reward_value
        simulator_seed, algorithm_seed = np.random.SeedSequence(int(seed)).spawn(2)
        rng = np.random.default_rng(simulator_seed)
        algorithm.reset(n_episodes, algorithm_seed)
        tables: dict[tuple, Outcomes] = {}
        components: dict = {}
        mixed_values: dict[tuple, np.ndarray] = {}
        exact: dict = {}
        segments: list[list[float]] = []
        blocks: list = []
        certified = 0
        k = 0
        while k < n_episodes:
            deployment = algorithm.deployment()
            limit = int(min(deployment.episodes, n_episodes - k))
            if limit < 1:
                raise RuntimeError(f"{algorithm.name} proposed a block of {deployment.episodes}")
            key = (deployment.keys, tuple(np.asarray(deployment.weights).tolist()))
            table = tables.get(key)
            if table is None:
                for name, policy in zip(deployment.keys, deployment.policies, strict=True):
                    if name not in components:
                        components[name] = episode_outcomes(task, policy, horizon, count_mask)
                table = tables[key] = mix_outcomes(
                    (w, components[name]) for w, name in zip(deployment.weights, deployment.keys,
                                                             strict=True))
                for name, policy in zip(deployment.keys, deployment.policies, strict=True):
                    if name not in exact:
                        values = tabular.evaluate(task, policy)
                        exact[name] = (values.reward_value, values.cost_value)
            certified_blocks = algorithm.consume_certified(
                table.reward_return, table.cost_return, table.probability, limit, rng,
                MIN_CERTIFIED) if fast else []
            if certified_blocks:
                used = size = sum(b for b, _ in certified_blocks)
                certified += used
                start = k
                for b, counts in certified_blocks:
                    nonzero = counts > 0
                    blocks.append((start, b, table.visits[nonzero], counts[nonzero]))
                    start += b
                counts = None
            else:
                size = algorithm.certified_block(
                    (table.reward_return.min(), table.reward_return.max()),
                    (table.cost_return.min(), table.cost_return.max()), limit)
                if size >= min(MIN_CERTIFIED, limit):
                    counts = rng.multinomial(size, table.probability)
                    used = algorithm.observe_totals(float(counts @ table.reward_return),
                                                    float(counts @ table.cost_return), size)
                    certified += used
                else:
                    size = min(limit, MATERIALISE)
                    drawn = rng.choice(table.size, size=size, p=table.probability)
                    used = int(algorithm.observe(table.reward_return[drawn],
                                                 table.cost_return[drawn]))
                    counts = np.bincount(drawn[:used], minlength=table.size)
            if not 1 <= used <= size:
                raise RuntimeError(f"{algorithm.name} consumed {used} of {size} episodes")
            if counts is not None:
                nonzero = counts > 0
                blocks.append((k, used, table.visits[nonzero], counts[nonzero]))
            mixed = mixed_values.get(key)
            if mixed is None:
                component = np.array([exact[name] for name in deployment.keys])
                mixed = mixed_values[key] = np.asarray(deployment.weights) @ component
            if segments and segments[-1][2] == mixed[0] and segments[-1][3] == mixed[1]:
                segments[-1][1] += used
            else:
                segments.append([k, used, float(mixed[0]), float(mixed[1])])
            k += used
    return BlockRun(optimal_value=float(optimal_value), budget=float(task.budget),
                    horizon=int(horizon), seed=int(seed), n_episodes=int(n_episodes),
                    segments=np.array(segments, dtype=np.float64), blocks=blocks,
                    certified_episodes=certified, n_blocks=len(blocks), log=algorithm.log())
