"""The training phase: Algorithm 1 with Subroutine 3 (Section 3 of the paper), and Lemma 3.5 checks.

Algorithm 1 samples N = ln^2(delta)/delta^2 tasks, builds a greedy cover U (Subroutine 3, stopping
once at most 3 delta N samples are uncovered) and accepts it when
``sqrt(|U| ln(2N/delta) / (N - |U|)) <= delta``; otherwise it doubles N and samples afresh. Then
O_l gives each cover task a near-optimal policy with values (u_i, v_i) and O_s one policy pi_s
safe on every cover task with values (u_{i,s}, v_{i,s}): the policy-value set U_hat of Eq. 2.

Values are stored in task units (reward; discounted cost); ``utility_form`` converts.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from safepce import tabular
from safepce.tabular.distance import simulation_lemma_constant
from safepce.tabular.distributions import TaskDistribution, distribution_from_dict
from safepce.tabular.errors import npz_problem

from .oracles import (
    DesignatedSafePolicy,
    DistanceCoverage,
    ExactLPOracle,
    MinimumCostSafePolicy,
    ParameterCoverage,
    SafePolicy,
    TrainingInputError,
    WorstCaseSafePolicy,
)
from .progress import keep_alive, status
from .results import atomic_write, jsonable

FORMAT_VERSION = 1
MAX_ROUNDS = 30


#: Algorithm 1 is stopped as hopeless when its statistic rose this many rounds in a row while
#: the cover held at least this fraction of the sample (every sample needing its own ball)
RISING_ROUNDS = 2
TRACKING_FRACTION = 0.5


def _cannot_stop(rounds: list[dict]) -> bool:
    """The cover grows with the sample, so the statistic rises with ln N and never falls."""
    if len(rounds) <= RISING_ROUNDS:
        return False
    recent = [r["statistic"] for r in rounds[-RISING_ROUNDS - 1:]]
    last = rounds[-1]
    return (all(b >= a for a, b in zip(recent, recent[1:], strict=False))
            and last["cover_size"] >= TRACKING_FRACTION * last["n"])


def _cannot_stop_message(rounds, coverage, theta, distribution, delta) -> str:
    """The refusal, with the smallest radius 2^j r (j <= 60) whose cover of the last sample
    meets the stopping rule (searched downwards from the widest, where covers are small and
    cheap, to the first that fails)."""
    last = rounds[-1]
    suggestion = None
    for j in range(60, 0, -1):
        wider = type(coverage)(coverage.radius * 2**j)
        size = wider.greedy_cover(theta, distribution, 3 * delta * last["n"]).indices.size
        if stopping_statistic(size, last["n"], delta) > delta:
            break
        suggestion = wider.radius
    hint = (f"a radius of {suggestion:.3g} or more would already stop on this sample of "
            f"N = {last['n']} tasks; smaller radii (above {coverage.radius:g}) can stop on the "
            "larger samples of later rounds, once the cover no longer grows with N"
            if suggestion is not None else "no radius up to 2^60 times this one stops")
    risen = ", ".join(f"{r['statistic']:.3g}" for r in rounds[-RISING_ROUNDS - 1:])
    return (f"radius: Algorithm 1 cannot stop at radius {coverage.radius:g}: the cover grows "
            f"with the sample (|U| = {last['cover_size']} of N = {last['n']}) and the stopping "
            f"statistic rose for {RISING_ROUNDS} rounds "
            f"({risen}); "
            f"{hint}")


def initial_sample_size(delta: float) -> int:
    """N = ln^2(delta) / delta^2, rounded up (Algorithm 1, line 1)."""
    return math.ceil(math.log(delta) ** 2 / delta**2)


def stopping_statistic(cover_size: int, n: int, delta: float) -> float:
    """sqrt(|U| ln(2N/delta) / (N - |U|)) of Algorithm 1's stopping rule (stop when <= delta)."""
    if n <= cover_size:
        return math.inf
    return math.sqrt(cover_size * math.log(2 * n / delta) / (n - cover_size))


@dataclass
class TrainingResult:
    """What Algorithm 1 returns: the cover, U_hat (Eq. 2) and pi_s, plus how it got there.

    ``cover_parameters`` (m, d); ``policies`` (m, S, A); ``reward_values`` u_i and ``cost_values``
    v_i of pi_i on its own task; ``safe_reward_values`` u_{i,s} and ``safe_cost_values`` v_{i,s}
    of pi_s on task i (task units); ``safe_margin`` (m,) pi_s's normalised slack (paper units).
    ``rounds``: one dict per round with n, cover_size, n_uncovered, statistic.
    """

    cover_parameters: np.ndarray
    policies: np.ndarray
    reward_values: np.ndarray
    cost_values: np.ndarray
    safe_policy: np.ndarray
    safe_reward_values: np.ndarray
    safe_cost_values: np.ndarray
    safe_margin: np.ndarray
    rounds: list[dict]
    settings: dict
    distribution: dict | None = None
    seed: int | None = None
    wall_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def cover_size(self) -> int:
        return int(self.cover_parameters.shape[0])

    def cover_tasks(self, family) -> list:
        """The cover's tasks, rebuilt from their parameters (what a baseline knows of the
        family's static structure)."""
        return [family.build(p) for p in self.cover_parameters]

    def cover_radius(self, family) -> float:
        """The cover radius eps in task distance (paper units): the oracle's radius, times the
        family's exact ``distance_scale`` when O_c compared parameters (Lemma 3.5's eps)."""
        coverage = self.settings["coverage"]
        if coverage["oracle"] == "parameter":
            if family.distance_scale is None:
                raise TrainingInputError(
                    "family: expected a family with an exact distance_scale to turn a parameter "
                    "radius into a task distance; train with the distance oracle instead")
            return float(coverage["radius"]) * family.distance_scale
        return float(coverage["radius"])

    @property
    def n_sampled(self) -> int:
        """Tasks sampled over all rounds."""
        return int(sum(r["n"] for r in self.rounds))

    #: the arrays of a result, in the order :meth:`content_sha256` hashes them
    ARRAYS = ("cover_parameters", "policies", "reward_values", "cost_values", "safe_policy",
              "safe_reward_values", "safe_cost_values", "safe_margin")

    def content_sha256(self) -> str:
        """A hash of what the result says (every array's dtype, shape and bytes; the rounds,
        settings, distribution, seed and extra as canonical JSON), not of how long it took
        (``wall_seconds`` is left out) nor of the file's bytes (a zip archive records its
        write time): retraining with the same settings gives the same hash, so a folder whose
        training was removed and retrained stays resumable."""
        digest = hashlib.sha256()
        header = {"rounds": self.rounds, "settings": self.settings,
                  "distribution": self.distribution, "seed": self.seed, "extra": self.extra}
        digest.update(json.dumps(jsonable(header), sort_keys=True).encode())
        for name in self.ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (an .npz of arrays plus a JSON header); no pickled objects."""
        path = Path(path)
        header = {
            "format_version": FORMAT_VERSION, "rounds": self.rounds, "settings": self.settings,
            "distribution": self.distribution, "seed": self.seed,
            "wall_seconds": self.wall_seconds, "extra": self.extra,
        }
        atomic_write(path, lambda handle: np.savez_compressed(
            handle, header=np.array(json.dumps(header)),
            cover_parameters=self.cover_parameters, policies=self.policies,
            reward_values=self.reward_values, cost_values=self.cost_values,
            safe_policy=self.safe_policy, safe_reward_values=self.safe_reward_values,
            safe_cost_values=self.safe_cost_values, safe_margin=self.safe_margin), binary=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainingResult:
        problem = npz_problem(path)
        if problem:
            raise TrainingInputError(f"{path}: not a readable safepce training result: it "
                                     f"{problem}; remove it to retrain")
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in data.files if k != "header"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise TrainingInputError(f"{path}: not a readable safepce training result "
                                     f"({type(exc).__name__}: {exc}); remove it to retrain"
                                     ) from None
        if header.get("format_version") != FORMAT_VERSION:
            raise TrainingInputError(f"path: {path} has format version "
                                     f"{header.get('format_version')}; expected {FORMAT_VERSION}")
        return cls(**arrays, rounds=header["rounds"], settings=header["settings"],
                   distribution=header["distribution"], seed=header["seed"],
                   wall_seconds=header["wall_seconds"], extra=header["extra"])

    def build_distribution(self) -> TaskDistribution:
        """The distribution trained on (for families that describe themselves in JSON)."""
        if self.distribution is None:
            raise TrainingInputError("distribution: this result does not record its distribution")
        return distribution_from_dict(self.distribution)


def _check_delta(delta: float) -> float:
    if not (isinstance(delta, (int, float)) and 0.0 < delta < 1.0 / 3.0):
        raise TrainingInputError(
            f"delta: expected a number in (0, 1/3) (Subroutine 3 stops at 3 delta N uncovered); "
            f"got {delta!r}")
    return float(delta)


def make_coverage_oracle(kind: str, radius: float):
    """'parameter' or 'distance' O_c with the given radius."""
    if kind == "parameter":
        return ParameterCoverage(radius)
    if kind == "distance":
        return DistanceCoverage(radius)
    raise TrainingInputError(f"oracle: expected 'parameter' or 'distance'; got {kind!r}")


def train(distribution: TaskDistribution, coverage, delta: float, seed: int = 0,
          lp_oracle: ExactLPOracle | None = None, safe_oracle=None,
          progress: bool = True, max_rounds: int = MAX_ROUNDS) -> TrainingResult:
    """Algorithm 1 (Section 3 of the paper) on ``distribution``.

    Args:
        distribution: the task distribution D.
        coverage: O_c, a :class:`ParameterCoverage` or :class:`DistanceCoverage`.
        delta: confidence/coverage parameter in (0, 1/3).
        seed: root seed; round k samples with ``SeedSequence(seed).spawn(...)[k]``.
        lp_oracle: O_l (default: exact LP, HiGHS).
        safe_oracle: O_s (default: :class:`WorstCaseSafePolicy` with xi = 0).
        progress: show progress bars.

    Examples
    --------
    >>> from safepce.tabular import families
    >>> from safepce.theory.oracles import DistanceCoverage, WorstCaseSafePolicy
    >>> D = families.make("runnable")
    >>> result = train(D, DistanceCoverage(0.01), 0.1, seed=0,
    ...                safe_oracle=WorstCaseSafePolicy(xi=0.5), progress=False)
    >>> result.cover_size
    22
    >>> bool(result.safe_margin.min() >= 0.5)      # pi_s meets the margin on the cover
    True
    """
    start = time.perf_counter()
    delta = _check_delta(delta)
    if not isinstance(distribution, TaskDistribution):
        raise TrainingInputError(f"distribution: expected a TaskDistribution; got "
                                 f"{type(distribution).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TrainingInputError(f"seed: expected a non-negative integer; got {seed!r}")
    with status("checking the family on one sampled task", progress):
        probe = distribution.check(seed)
        smallest = np.atleast_1d(tabular.minimum_cost(probe))
    if np.any(smallest > probe.budgets):
        raise TrainingInputError(
            f"budget: no policy meets the budget {probe.budgets.tolist()} on a sampled task (its "
            f"smallest achievable discounted cost is {np.round(smallest, 6).tolist()})")
    lp_oracle = lp_oracle or ExactLPOracle()
    safe_oracle = safe_oracle or WorstCaseSafePolicy()
    round_seeds = np.random.SeedSequence(int(seed)).spawn(max_rounds)

    n = initial_sample_size(delta)
    rounds = []
    bar = tqdm(total=None, desc="Algorithm 1: sample and cover", unit="round", disable=not progress)
    for round_index in range(max_rounds):
        theta = distribution.sample(n, round_seeds[round_index])
        cover = coverage.greedy_cover(theta, distribution, 3 * delta * n)
        statistic = stopping_statistic(cover.indices.size, n, delta)
        rounds.append({"n": n, "cover_size": int(cover.indices.size),
                       "n_uncovered": cover.n_uncovered, "statistic": statistic})
        bar.update(1)
        bar.set_postfix(N=n, cover=cover.indices.size, stat=f"{statistic:.3g}")
        if statistic <= delta:
            break
        if _cannot_stop(rounds):
            bar.close()
            raise TrainingInputError(_cannot_stop_message(rounds, coverage, theta, distribution,
                                                          delta))
        n *= 2
    else:
        bar.close()
        raise TrainingInputError(
            f"delta: the stopping rule did not hold within {max_rounds} rounds "
            f"(last N = {n // 2}, |U| = {rounds[-1]['cover_size']}); increase radius or delta")
    bar.close()

    cover_parameters = theta[cover.indices]
    with status(f"building the {cover_parameters.shape[0]} cover tasks", progress):
        tasks = distribution.build_many(cover_parameters)
    solutions = []
    bar = tqdm(tasks, desc="O_l: exact LP per cover task", disable=not progress)
    with keep_alive(bar):
        for task in bar:
            try:
                solutions.append(lp_oracle(task))
            except tabular.InfeasibleCMDPError as exc:
                raise TrainingInputError(f"distribution: a cover task is infeasible ({exc})"
                                         ) from None
    with status("O_s: the safe policy pi_s on the cover", progress):
        safe: SafePolicy = safe_oracle(tasks, distribution)
    describe = getattr(safe_oracle, "describe", lambda: {"oracle": type(safe_oracle).__name__})
    try:
        spec = distribution.to_dict()
    except NotImplementedError:
        spec = None
    return TrainingResult(
        cover_parameters=cover_parameters,
        policies=np.stack([s.policy for s in solutions]),
        reward_values=np.array([s.reward_value for s in solutions]),
        cost_values=np.array([s.cost_value for s in solutions]),
        safe_policy=safe.policy,
        safe_reward_values=safe.reward_values,
        safe_cost_values=safe.cost_values,
        safe_margin=safe.margin,
        rounds=rounds,
        settings={"delta": delta, "coverage": coverage.describe(), "safe_oracle": describe(),
                  "lp_oracle": {"oracle": "exact-lp", "backend": lp_oracle.backend}},
        distribution=spec,
        seed=int(seed),
        wall_seconds=time.perf_counter() - start,
    )


# --- Lemma 3.5 on exact quantities ---------------------------------------------------------------


def _own_and_safe_values(tasks, policies, nearest) -> tabular.BatchEvaluation:
    """The (T, N + 1) values of :func:`safepce.tabular.evaluate_batch` restricted to what Lemma 3.5
    reads (each task's nearest cover policy and pi_s, the last column); NaN elsewhere. For
    sparse tasks, where each pair is a sparse solve, this is 2 solves per task instead of N+1."""
    reward = np.full((len(tasks), len(policies)), np.nan)
    cost = np.full((len(tasks), len(policies)), np.nan)
    for t, (task, own) in enumerate(zip(tasks, nearest, strict=True)):
        pair = tabular.evaluate_batch(task, [policies[own], policies[-1]])
        reward[t, [own, -1]] = pair.reward_value[0]
        cost[t, [own, -1]] = pair.cost_value[0]
    budgets = np.array([task.budget for task in tasks])[:, None]
    return tabular.BatchEvaluation(reward_value=reward, cost_value=cost, slack=budgets - cost)


def check_lemma_3_5(result: TrainingResult, distribution: TaskDistribution, coverage,
                    n_heldout: int = 1000, seed: int = 1, covering_number: int | None = None,
                    progress: bool = False) -> dict:
    """Lemma 3.5's quantities on held-out tasks M ~ D, computed exactly.

    For each held-out task: whether some cover task lies within the radius (O_c), and for the
    nearest covering tuple (pi, u, v, u_s, v_s) the prediction error
    ``max{|V_r(pi) - u|, |V_c(pi) - v|, |V_r(pi_s) - u_s|, |V_c(pi_s) - v_s|}`` (paper units; Lemma
    3.5.1 bounds it by eps L), the optimality gap ``V_r(pi*) - V_r(pi)`` (paper units; bound
    4 eps L (1 + 1/(xi (1-gamma)))) and pi_s's normalised slack (Lemma 3.5.2: >= xi - eps L).
    Also ``cover_size`` against ``2 C ln(1/delta)`` (Lemma 3.5.3) when ``covering_number`` is given.
    Here eps is the cover radius in task distance (for the parameter oracle, radius times the
    family's distance_scale).
    """
    heldout = distribution.sample(n_heldout, np.random.SeedSequence(seed))
    scale = distribution.distance_scale
    radius = coverage.radius
    eps = radius * (scale if coverage.name == "parameter" and scale else 1.0)
    with status(f"Lemma 3.5: building {n_heldout} held-out tasks", progress):
        tasks = distribution.build_many(heldout)
    first = tasks[0]
    L = simulation_lemma_constant(first.gamma)
    if coverage.name == "parameter" or scale is not None:
        factor = 1.0 if coverage.name == "parameter" else scale
        gaps = factor * np.max(np.abs(heldout[:, None, :] - result.cover_parameters[None]), axis=2)
    else:
        cover_tasks = distribution.build_many(result.cover_parameters)
        gaps = np.array([[tabular.distance(t, c) for c in cover_tasks] for t in tasks])
    nearest = np.argmin(gaps, axis=1)
    covered = gaps[np.arange(n_heldout), nearest] <= radius
    policies = np.concatenate([result.policies, result.safe_policy[None]])
    with status("Lemma 3.5: the cover's and pi_s's values on the held-out tasks", progress):
        if first.is_sparse:
            values = _own_and_safe_values(tasks, policies, nearest)
        else:
            values = tabular.evaluate_batch(tasks, policies)
    form = first.utility_form
    reward_paper = form.reward_value_to_paper(values.reward_value)
    utility_paper = form.cost_value_to_paper(values.cost_value)
    rows, own = np.arange(n_heldout), nearest
    # K constraints: each utility's error counts (the largest over k)
    utility_paper = utility_paper.reshape(n_heldout, len(policies), -1)
    cover_utility = form.cost_value_to_paper(result.cost_values).reshape(result.cover_size, -1)
    safe_utility = form.cost_value_to_paper(result.safe_cost_values).reshape(result.cover_size, -1)
    prediction_error = np.max(np.stack([
        np.abs(reward_paper[rows, own] - form.reward_value_to_paper(result.reward_values[own])),
        np.max(np.abs(utility_paper[rows, own] - cover_utility[own]), axis=-1),
        np.abs(reward_paper[rows, -1] - form.reward_value_to_paper(result.safe_reward_values[own])),
        np.max(np.abs(utility_paper[rows, -1] - safe_utility[own]), axis=-1),
    ]), axis=0)
    # in parameter order, so that each Lagrangian solve starts from its neighbour's answer
    order = np.lexsort(heldout.T[::-1])
    optimum = np.empty(n_heldout)
    bar = tqdm([tasks[i] for i in order], desc="held-out optima", disable=not progress)
    with keep_alive(bar):
        optimum[order] = [s.reward_value for s in tabular.solve_sequence(bar)]
    gap = form.reward_value_to_paper(optimum - values.reward_value[rows, own])
    safe_slack = utility_paper[:, -1].min(axis=-1)
    delta = result.settings["delta"]
    report = {
        "n_heldout": n_heldout,
        "eps_task_distance": eps,
        "L": L,
        "heldout_coverage": float(covered.mean()),
        "coverage_bound": 1 - 6 * delta,
        "prediction_error_max": float(prediction_error[covered].max(initial=0.0)),
        "prediction_error_bound": eps * L,
        "optimality_gap_max": float(gap[covered].max(initial=0.0)),
        "safe_policy_min_slack": float(safe_slack.min()),
        "safe_policy_min_slack_cost_units": float(np.min(values.slack[:, -1])),
        "cover_size": result.cover_size,
    }
    if covering_number is not None:
        report["covering_number"] = int(covering_number)
        report["cover_size_bound"] = 2 * covering_number * math.log(1 / delta)
    return report


def make_safe_oracle(kind: str, xi: float = 0.0, parameter: float | None = None):
    """'designated' (optimal policy of the task at ``parameter``), 'worst-case' or 'min-cost'
    O_s."""
    if kind == "designated":
        if parameter is None:
            raise TrainingInputError("safe_parameter: required for the designated O_s")
        return DesignatedSafePolicy(parameter, xi=xi)
    if kind == "worst-case":
        return WorstCaseSafePolicy(xi=xi)
    if kind == "min-cost":
        return MinimumCostSafePolicy(xi=xi)
    raise TrainingInputError(f"safe_oracle: expected 'designated', 'worst-case' or 'min-cost'; "
                             f"got {kind!r}")
