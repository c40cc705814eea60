"""Validation of CMDP construction and the paper's utility form (PAPER.md section 1)."""

import numpy as np
import pytest

from safepce import tabular
from safepce.tabular import CMDP, InvalidCMDPError


def _valid(**overrides):
    S, A = 3, 2
    fields = dict(
        P=np.full((S, A, S), 1.0 / S),
        r=np.zeros((S, A)),
        cost=np.ones((S, A)),
        budget=5.0,
        rho=np.full(S, 1.0 / S),
        gamma=0.9,
    )
    fields.update(overrides)
    return fields


def _bad_rows():
    P = np.full((3, 2, 3), 1.0 / 3)
    P[1, 0] = [0.5, 0.5, 0.1]
    return P


def _negative_P():
    P = np.full((3, 2, 3), 1.0 / 3)
    P[2, 1] = [1.2, -0.2, 0.0]
    return P


def _nan_r():
    r = np.zeros((3, 2))
    r[2, 1] = np.nan
    return r


@pytest.mark.parametrize(
    ("overrides", "field", "index", "phrase"),
    [
        (dict(P=np.full((3, 2, 4), 0.25)), "P", None, "shape (S, A, S)"),
        (dict(P=np.full((3, 3), 1 / 3)), "P", None, "3-D"),
        (dict(P=_bad_rows()), "P", (1, 0, ":"), "sum"),
        (dict(P=_negative_P()), "P", (2, 1, 1), "non-negative"),
        (dict(r=_nan_r()), "r", (2, 1), "finite"),
        (dict(r=np.zeros((2, 2))), "r", None, "shape (S, A)"),
        (dict(cost=-np.ones((3, 2))), "cost", (0, 0), "non-negative"),
        (dict(cost=np.ones((3, 2, 2))), "budget", None, "shape (K,)"),
        (dict(budget=np.ones(2)), "budget", None, "scalar"),
        (dict(budget=np.inf), "budget", None, "finite"),
        (dict(rho=np.array([0.5, 0.5, 0.5])), "rho", None, "sum"),
        (dict(rho=np.array([0.5, 0.5])), "rho", None, "shape (S,)"),
        (dict(gamma=1.0), "gamma", None, "(0, 1)"),
        (dict(gamma=0.0), "gamma", None, "(0, 1)"),
        (dict(gamma=float("nan")), "gamma", None, "(0, 1)"),
        (dict(gamma="x"), "gamma", None, "(0, 1)"),
    ],
)
def test_invalid_fields_are_named(overrides, field, index, phrase):
    with pytest.raises(InvalidCMDPError) as info:
        CMDP(**_valid(**overrides))
    error = info.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert str(error).startswith(field)
    assert phrase in str(error)
    if index is not None:
        assert error.index == index


def test_row_sum_tolerance_is_1e_9():
    P = np.full((3, 2, 3), 1.0 / 3)
    P[0, 0, 0] += 5e-10
    CMDP(**_valid(P=P))
    P[0, 0, 0] += 1e-9
    with pytest.raises(InvalidCMDPError, match="tolerance 1e-09"):
        CMDP(**_valid(P=P))


def test_arrays_are_copied_and_read_only():
    fields = _valid()
    cmdp = CMDP(**fields)
    fields["r"][0, 0] = 7.0
    assert cmdp.r[0, 0] == 0.0
    with pytest.raises(ValueError):
        cmdp.P[0, 0, 0] = 1.0


def test_utility_form_of_gridworld():
    """c = b(1-gamma) - cost scaled by max|c|: 0.15 off hazards, (0.15 - 10) in them."""
    task = tabular.gridworld(0.3)
    form = task.utility_form
    assert form.reward_scale == 10.0
    assert form.utility_scale[0] == pytest.approx(9.85)
    assert form.reward.max() == 1.0 and form.reward.min() == 0.0
    assert form.utility.min() == -1.0
    assert form.utility.max() == pytest.approx(0.15 / 9.85)


def test_utility_values_are_the_normalised_slack():
    """V_c (normalised utility form, evaluated directly) = (b - V_cost) / scale."""
    task = tabular.random_cmdp(6, 3, seed=4)
    policy = tabular.uniform_policy(6, 3) * 0.5 + tabular.deterministic_policy(
        [0, 1, 2, 0, 1, 2], 3) * 0.5
    exact = tabular.evaluate(task, policy)
    form = task.utility_form
    utility_task = CMDP(task.P, form.reward, np.zeros((6, 3)), 0.0, task.rho, task.gamma)
    occupancy = tabular.evaluate(utility_task, policy).occupancy
    direct_v_c = np.sum(occupancy * form.utility[..., 0]) / (1 - task.gamma)
    direct_v_r = np.sum(occupancy * form.reward) / (1 - task.gamma)
    assert direct_v_c == pytest.approx(float(form.cost_value_to_paper(exact.cost_value)), abs=1e-12)
    assert direct_v_r == pytest.approx(float(form.reward_value_to_paper(exact.reward_value)))
    assert float(form.utility_value_to_cost(direct_v_c)) == pytest.approx(exact.cost_value)
    assert np.all(np.abs(form.utility) <= 1) and np.all((form.reward >= 0) & (form.reward <= 1))


def test_utility_form_rejects_negative_reward():
    task = CMDP(**_valid(r=-np.ones((3, 2))))
    with pytest.raises(InvalidCMDPError, match=r"^r\[0, 0\]"):
        task.utility_form  # noqa: B018


def test_a_complex_kernel_is_refused_naming_an_entry():
    """numpy would drop the imaginary parts with a warning; a CMDP refuses them."""
    task = tabular.gridworld(0.3)
    P = task.P.astype(complex)
    P[2, 1, 3] += 1e-9j
    with pytest.raises(tabular.InvalidCMDPError, match=r"P\[2, 1, 3\]: expected real entries"):
        tabular.CMDP(P, task.r, task.cost, task.budget, task.rho, task.gamma)
