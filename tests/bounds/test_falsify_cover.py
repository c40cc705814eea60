"""Lemma C.2 on the box family (bounds.falsify_cover): the cover Subroutine 3 builds from
sampled tasks against (C_eps + 1) ln(1/delta) with C_eps = 1 (the box's centre), counted a
second way by hand; refuted with a replayable counterexample; and with radius-eps/2 centres
(C_{eps/2} = the number of vertices) the bound holds."""

import math

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds import falsify, falsify_cover


def test_the_box_centre_covers_every_vertex_and_vertices_are_two_eps_apart():
    family, centre = falsify_cover.box_family(3)
    assert falsify_cover.covering_number_with_centre(3) == 1
    distances = {tabular.distance(a, b) for i, a in enumerate(family.tasks)
                 for b in family.tasks[i + 1:]}
    assert distances == {2 * falsify_cover.EPS}
    assert max(tabular.distance(centre, v) for v in family.tasks) == falsify_cover.EPS


@pytest.mark.parametrize("k, expected", [(4, 14), (6, 52)])
def test_cover_sizes_by_both_routes(k, expected):
    instance = falsify_cover.CubeInstance(k, 0.05, 0)
    bound = 2 * math.log(20)                    # (C + 1) ln(1/delta), C = 1
    assert falsify_cover.toolkit_ratio(instance) * bound == pytest.approx(expected)
    assert float(falsify_cover.exact_ratio(instance)) * bound == pytest.approx(expected)


def test_lemma_c2_is_refuted_and_the_counterexample_replays(tmp_path):
    budget = falsify.SearchBudget("test", 40, 10, 1, 20)
    result = falsify.falsify(falsify_cover.LEMMA_C2, budget, seed=0)
    assert result.status == "refuted" and result.routes_agree
    assert result.worst_ratio > 20                # k = 8: ~200 tasks against a bound of ~6
    path = falsify.save_counterexample(tmp_path, falsify_cover.LEMMA_C2, result)
    replayed = falsify.replay(path)
    assert replayed["refutes"] and replayed["instance"].k <= 4


def test_with_centres_among_the_vertices_the_bound_holds():
    """C_{eps/2}: balls of radius eps/2 hold one vertex each, so the covering number of D is
    the number of vertices needed for mass 1 - delta; the bound (C + 1) ln(1/delta) then holds
    on the same samples."""
    k, delta = 4, 0.05
    family, _ = falsify_cover.box_family(k)
    # a ball of radius eps/2 holds at most one vertex (they are 2 eps apart; triangle
    # inequality), so C_{eps/2}(D, delta) is the number of vertices needed for mass 1 - delta
    within = [[tabular.distance(a, b) <= falsify_cover.EPS for b in family.tasks]
              for a in family.tasks]
    assert np.array_equal(np.array(within), np.eye(2**k, dtype=bool))
    C_half = math.ceil((1 - delta) * 2**k)
    size = falsify_cover.toolkit_ratio(falsify_cover.CubeInstance(k, delta, 0)) * 2 * math.log(
        1 / delta)
    assert size <= (C_half + 1) * math.log(1 / delta)
    assert np.isclose(size, round(size))
