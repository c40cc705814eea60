"""Upper bounds: explicit terms recomputed by hand; Theorem 4.2 holds on exact Safe-PCE runs."""

import math

import numpy as np
import pytest

from safepce.bounds.upper import (
    BoundInputError,
    corollary_4_3_samples,
    corollary_f_1,
    lemma_3_5,
    lemma_c_4,
    table_1_samples,
    theorem_4_2_rate,
    theorem_4_2_terms,
)


def test_theorem_4_2_terms_by_hand():
    K, delta, eps, gamma, xi = 10_000, 0.1, 0.001, 0.5, 0.8
    v_s, alpha_1 = 0.8, 0.15
    L = 1 / 0.5 + 2 * 0.5 / 0.25
    kappa = (4 * L + 9) * eps
    C = (2 * v_s + kappa) / (3 * v_s)
    stages = math.log(eps) / math.log(C)
    log = math.log(4 * K / delta)
    A = ((4 * L + 9 - v_s) * alpha_1 + v_s - kappa) / (
        v_s * alpha_1 + (v_s - kappa - v_s * alpha_1) * eps)
    root = math.sqrt(2 * 3 * K * log * math.ceil(stages) / 0.25)
    bound = theorem_4_2_terms(K, delta, eps, gamma, xi, 3, [v_s], [alpha_1])
    assert bound.term_i == pytest.approx(4 * eps * L * K * (1 + 1 / (xi * 0.5)))
    assert bound.term_ii == pytest.approx(2 * K * A * eps / 0.5
                                          + 32 * math.sqrt(3 * K * log * stages) / (0.25 * v_s))
    assert bound.term_iii == pytest.approx(eps * (L + 1) * K + root)
    assert bound.term_iv == pytest.approx(eps * K + root)
    assert bound.total == pytest.approx(bound.term_i + bound.term_ii + bound.term_iii
                                        + bound.term_iv)


def test_vacuous_regime_is_refused():
    with pytest.raises(BoundInputError, match="^safe_margins"):
        theorem_4_2_terms(1000, 0.1, 0.00375, 0.9, 0.05, 1, [0.05], [0.001])


def test_rates_scale_as_stated():
    K = np.array([1e4, 4e4])
    sqrt_part = theorem_4_2_rate(K, 10, 1e-9, 0.5, 0.5)
    assert sqrt_part[1] / sqrt_part[0] == pytest.approx(2.0, rel=1e-6)
    assert corollary_4_3_samples(0.05, 0.1, 0.9, 4) / corollary_4_3_samples(0.1, 0.1, 0.9, 4) \
        == pytest.approx(4.0)
    f1 = corollary_f_1(1e4, 4, 0.01, 0.5, 0.5)
    assert f1["reward_regret"] == pytest.approx(math.sqrt(4e4) / 0.5 + 0.01 * 1e4 / (0.5 * 0.125))
    rates = table_1_samples(0.1, 0.1, 0.9, 49, 4)
    assert rates["DOPE"] / rates["DOPE+"] == pytest.approx(10.0)
    assert rates["OptPess-LP"] / rates["DOPE"] == pytest.approx(49.0)


def test_lemma_quantities():
    q = lemma_3_5(0.01, 0.9, 0.5, 0.1, 30)
    assert q["L"] == 6.0 and q["assumption_holds"]
    assert q["prediction_error"] == pytest.approx(0.06)
    assert q["cover_size"] == pytest.approx(60 * math.log(10))
    assert lemma_c_4(0.01, 0.9, 0.5) == pytest.approx(2 * 0.01 * 6 * (1 + 2 / 0.45))
    with pytest.raises(BoundInputError, match="^gamma"):
        lemma_3_5(0.01, 0.9, 1.0, 0.1, 30)
