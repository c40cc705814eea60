"""Lemma C.2 (the cover size of Subroutine 3) as a ratio claim for :mod:`safepce.bounds.falsify`.

Lemma C.2 (App. C.2, p. 14; proof in App. C.3.2, pp. 16-17) bounds the size of the greedy cover
U by ``(C_eps(D, delta) + 1) ln(1/delta)``. Definition 4.1 (Section 4) lets the C_eps centres be
any CMDPs of the class M_all, but the proof's greedy step compares the selected task with a
centre as if the centre were one of the sampled tasks. When the centres are not sampled the
bound fails: take M_all the box of one-state tasks whose rewards lie in [1/2 - eps, 1/2 + eps]
on k actions, and D uniform on the box's 2^k vertices. The box's centre is within eps of every
vertex, so C_eps(D, delta) = 1, but two vertices are 2 eps apart, so a cover made of sampled
tasks needs about (1 - 3 delta) 2^k of them.

``ratio = |U| / ((C_eps + 1) ln(1/delta))`` with |U| from the toolkit's Subroutine 3
(:meth:`safepce.theory.oracles.DistanceCoverage.greedy_cover` on the first round's
N = ln^2(delta)/delta^2 samples, stopping at 3 delta N uncovered) and C_eps = 1 certified by
:func:`safepce.tabular.distance` (centre to every vertex <= eps). The exact route counts the
cover without the toolkit: the vertices are pairwise 2 eps apart, so a cover is a set of
distinct sampled vertices, and the greedy takes them by multiplicity until at most 3 delta N
samples are left.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from safepce import tabular
from safepce.tabular.distributions import FiniteUniform
from safepce.theory.oracles import DistanceCoverage
from safepce.theory.training import initial_sample_size

from .falsify import FalsifyError, RatioClaim

#: the half-side of the box: exact in binary, so 1/2 +- EPS and the distances are exact
EPS = 0.125


@dataclass(frozen=True)
class CubeInstance:
    """k reward coordinates, Algorithm 1's delta and the seed of its first round's samples."""

    k: int
    delta: float
    seed: int

    def size(self) -> tuple[int, int]:
        return (self.k, 0)

    def describe(self) -> str:
        return (f"D uniform on the 2^{self.k} vertices of the box [1/2 - {EPS}, 1/2 + {EPS}]^"
                f"{self.k} of one-state rewards (one more action with reward 1), gamma 1/2; "
                f"radius eps = {EPS}, delta = {self.delta:.6g}, sample seed {self.seed}")

    def save(self, path: Path) -> None:
        np.savez(path, k=np.int64(self.k), delta=np.float64(self.delta),
                 seed=np.int64(self.seed))

    @classmethod
    def load(cls, path: Path) -> CubeInstance:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(int(data["k"]), float(data["delta"]), int(data["seed"]))
        except (OSError, KeyError, ValueError) as exc:
            raise FalsifyError(f"{path}: not a Lemma C.2 counterexample ({exc})") from None


def box_task(rewards) -> tabular.CMDP:
    """One state, len(rewards) + 1 actions: the given rewards and a last action of reward 1 (so
    every task's reward scale is 1 and the paper's units are the task's), no cost."""
    k = len(rewards)
    r = np.append(np.asarray(rewards, dtype=np.float64), 1.0)[None, :]
    return tabular.CMDP(np.ones((1, k + 1, 1)), r, np.zeros((1, k + 1)), 1.0, np.ones(1), 0.5)


@lru_cache(maxsize=16)
def box_family(k: int) -> tuple[FiniteUniform, tabular.CMDP]:
    """D uniform on the 2^k vertices, and the box's centre."""
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * k, indexing="ij")).reshape(k, -1).T
    vertices = [box_task(0.5 + EPS * s) for s in signs]
    return FiniteUniform(vertices), box_task(np.full(k, 0.5))


def covering_number_with_centre(k: int) -> int:
    """C_eps(D, delta) for the box family: 1, certified by tabular.distance (the centre is within
    eps of every vertex); raises if not."""
    family, centre = box_family(k)
    worst = max(tabular.distance(centre, vertex) for vertex in family.tasks)
    if worst > EPS:
        raise FalsifyError(f"box family: the centre is {worst} > eps from a vertex")
    return 1


def _samples(instance: CubeInstance) -> np.ndarray:
    family, _ = box_family(instance.k)
    return family.sample(initial_sample_size(instance.delta), seed=instance.seed)


def toolkit_ratio(instance: CubeInstance) -> float:
    family, _ = box_family(instance.k)
    theta = _samples(instance)
    cover = DistanceCoverage(EPS).greedy_cover(theta, family, 3 * instance.delta * theta.shape[0])
    bound = (covering_number_with_centre(instance.k) + 1) * math.log(1 / instance.delta)
    return len(cover.indices) / bound


def exact_ratio(instance: CubeInstance) -> Fraction:
    """The greedy cover counted by hand: distinct vertices by multiplicity (ties: any order
    gives the same count) until at most 3 delta N samples are uncovered."""
    theta = _samples(instance)
    n = theta.shape[0]
    counts = sorted(np.unique(theta, return_counts=True)[1].tolist(), reverse=True)
    uncovered, size = n, 0
    for count in counts:
        if uncovered <= 3 * instance.delta * n:
            break
        uncovered -= count
        size += 1
    bound = 2 * Fraction(math.log(1 / instance.delta))
    return Fraction(size) / bound


class CubeSpace:
    """k in [1, 8], delta in [0.02, 0.3], any sample seed."""

    K = (1, 2, 3, 4, 5, 6, 7, 8)
    DELTAS = (0.02, 0.05, 0.1, 0.2, 0.3)

    @staticmethod
    def load(path: Path) -> CubeInstance:
        return CubeInstance.load(path)

    def extremes(self, rng: np.random.Generator, n: int) -> Iterator[CubeInstance]:
        for _ in range(n):
            yield CubeInstance(int(rng.choice(self.K)), float(rng.choice(self.DELTAS)),
                               int(rng.integers(0, 2**31)))

    def strategy(self):
        from hypothesis import strategies as st

        return st.builds(CubeInstance, st.sampled_from(self.K), st.sampled_from(self.DELTAS),
                         st.integers(0, 2**31 - 1))

    def encode(self, instance: CubeInstance) -> np.ndarray:
        return np.array([float(instance.k), math.log(instance.delta)])

    def decode(self, x: np.ndarray, like: CubeInstance) -> CubeInstance:
        k = int(np.clip(round(float(x[0])), 1, 8))
        delta = float(np.clip(math.exp(float(np.clip(x[1], -10, 0))), 0.02, 0.3))
        return CubeInstance(k, delta, like.seed)


LEMMA_C2 = RatioClaim(
    "lemma-c2", "Lemma C.2",
    "the greedy cover of Subroutine 3 has |U| <= (C_eps(D, delta) + 1) ln(1/delta) "
    "(App. C.2, p. 14), C_eps of Definition 4.1 with centres anywhere in M_all",
    "paper-statement", CubeSpace(), toolkit_ratio, exact_ratio, lambda instance: True,
    agreement=1e-9)

__all__ = ["EPS", "LEMMA_C2", "CubeInstance", "CubeSpace", "box_family", "box_task",
           "covering_number_with_centre", "exact_ratio", "toolkit_ratio"]
