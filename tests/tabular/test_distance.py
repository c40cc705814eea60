"""Task distance (PAPER.md section 1) and the simulation lemma (Lemma C.3)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safepce import tabular
from safepce.tabular import InvalidCMDPError
from safepce.tabular.distance import simulation_lemma_constant


def test_gridworld_distance_is_three_quarters_of_the_noise_gap():
    """Only P changes; the largest TV is at interior cells (|D| = 4): (1 - 1/4) |p1 - p2|."""
    assert tabular.distance(tabular.gridworld(0.3), tabular.gridworld(0.34)) == pytest.approx(0.03)
    assert tabular.distance(tabular.gridworld(0.2), tabular.gridworld(0.2)) == 0.0


def test_distance_components_by_hand():
    a = tabular.random_cmdp(3, 2, seed=1)
    r = np.array(a.r)
    r[1, 1] += 0.25
    b = tabular.CMDP(a.P, r, a.cost, a.budget, a.rho, a.gamma)
    assert tabular.distance(a, b, units="task") == pytest.approx(0.25)
    assert tabular.distance(a, a.with_budget(a.budget + 1.0), units="task") == pytest.approx(
        1.0 * (1 - a.gamma))


def test_mismatched_tasks_are_rejected():
    with pytest.raises(InvalidCMDPError, match="^m2"):
        tabular.distance(tabular.random_cmdp(3, 2, seed=1), tabular.random_cmdp(4, 2, seed=1))
    with pytest.raises(InvalidCMDPError, match="^m2.gamma"):
        tabular.distance(tabular.gridworld(0.1), tabular.gridworld(0.1, gamma=0.8))
    with pytest.raises(InvalidCMDPError, match="^units"):
        tabular.distance(tabular.gridworld(0.1), tabular.gridworld(0.1), units="miles")


def _paper_values(task, policy):
    exact = tabular.evaluate(task, policy)
    form = task.utility_form
    return (float(form.reward_value_to_paper(exact.reward_value)),
            float(form.cost_value_to_paper(exact.cost_value)))


@given(seed=st.integers(0, 2**32 - 1), step=st.floats(0.0, 1.0), gamma=st.floats(0.3, 0.95))
def test_simulation_lemma(seed, step, gamma):
    """Lemma C.3: |V^{M1}(pi) - V^{M2}(pi)| <= L d(M1, M2) for reward and utility, paper units.

    M2 is M1 with kernel, initial distribution and signals moved part of the way to another
    random task, with both tasks' normalisation scales equal to 1 so the forms are comparable."""
    rng = np.random.default_rng(seed)
    S, A = 4, 3

    def task(P, rho, r, cost):
        cost = cost.copy()
        cost[0, 0] = 1.0                      # max cost 1 and budget 0 make max|c| = 1
        r = r.copy()
        r[0, 0] = 1.0
        return tabular.CMDP(P, r, cost, 0.0, rho, gamma)

    ingredients = [(rng.dirichlet(np.ones(S), (S, A)), rng.dirichlet(np.ones(S)),
                    rng.random((S, A)), rng.random((S, A))) for _ in range(2)]
    m1 = task(*ingredients[0])
    m2 = task(*[(1 - step) * x + step * y for x, y in zip(*ingredients, strict=True)])
    d = tabular.distance(m1, m2)
    L = simulation_lemma_constant(gamma)
    policy = rng.dirichlet(np.ones(A), size=S)
    v1, v2 = _paper_values(m1, policy), _paper_values(m2, policy)
    assert abs(v1[0] - v2[0]) <= L * d + 1e-12
    assert abs(v1[1] - v2[1]) <= L * d + 1e-12
