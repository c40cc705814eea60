"""The family registry and family files."""

import numpy as np
import pytest

import safepce.bounds  # noqa: F401  (registers the hard family)
from safepce import tabular
from safepce.tabular import families
from safepce.tabular.distributions import distribution_from_dict


def test_registered_families_describe_themselves():
    assert {"gridworld", "runnable", "hard", "file"} <= set(families.FAMILIES)
    runnable = families.make("runnable", gamma=0.6)
    again = distribution_from_dict(runnable.to_dict())
    theta = runnable.sample(3, 0)
    for t in theta:
        assert np.array_equal(runnable.build(t).P, again.build(t).P)
        assert again.build(t).gamma == 0.6
    with pytest.raises(families.UnknownFamilyError, match="--family: expected one of"):
        families.make("atari")
    with pytest.raises(families.UnknownFamilyError, match="--family runnable"):
        families.make("runnable", mean=0.3)


def test_family_files_round_trip(tmp_path):
    tasks = [tabular.random_cmdp(3, 2, seed=s) for s in range(4)]
    path = families.save_family(tmp_path / "f.npz", tasks, weights=[0.1, 0.2, 0.3, 0.4])
    family = families.make("file", path=str(path))
    assert family.to_dict() == {"family": "file", "path": str(path)}
    for i, task in enumerate(tasks):
        loaded = family.build([i])
        for field in ("P", "r", "cost", "rho"):
            assert np.array_equal(getattr(loaded, field), getattr(task, field))
        assert loaded.budget == task.budget and loaded.gamma == task.gamma
    draws = family.sample(20_000, 0)[:, 0]
    assert np.bincount(draws.astype(int), minlength=4) / 20_000 == pytest.approx(
        [0.1, 0.2, 0.3, 0.4], abs=0.015)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(families.UnknownFamilyError, match="bad.npz"):
        families.make("file", path=str(tmp_path / "bad.npz"))


def test_arms_family_promises():
    """Every task's optimum plays its good arm with probability budget_rate (the constraint
    binds) and has the same V*; the all-safe policy has the same margin everywhere; a task's
    optimum deployed on another task is infeasible (costly arm) or loses reward (poor arm),
    alternating with the parity of the two indices."""
    family = tabular.families.make("arms", n_tasks=4, gamma=0.5, budget_rate=0.6)
    solutions = [tabular.solve(t) for t in family.tasks]
    safe = np.zeros((1, 5))
    safe[0, 0] = 1.0
    for j, (task, solution) in enumerate(zip(family.tasks, solutions, strict=True)):
        assert solution.policy[0, j + 1] == pytest.approx(0.6, abs=1e-9)
        assert solution.reward_value == pytest.approx(0.6 * 0.8 / 0.5, abs=1e-9)
        assert tabular.evaluate(task, safe).slack == pytest.approx(0.6 / 0.5)
        for i, other in enumerate(solutions):
            if i == j:
                continue
            value = tabular.evaluate(task, other.policy)
            if (i + 1 + j) % 2 == 1:        # costly: cost doubles, reward above V*
                assert value.cost_value == pytest.approx(2 * 1.2)
                assert value.reward_value == pytest.approx(1.2)
                assert value.reward_value > solutions[j].reward_value
            else:                           # poor: reward halves, feasible
                assert value.reward_value == pytest.approx(0.48) and value.slack >= -1e-12
    distances = [tabular.distance(a, b) for i, a in enumerate(family.tasks)
                 for b in family.tasks[i + 1:]]
    assert min(distances) >= 0.7


def test_the_gridworld_spec_holds_section_6s_numbers_and_the_erratum_reads_them(monkeypatch):
    """Every family default in one place: the gridworld's spec gives Section 6's gamma 0.9,
    budget 1.5, H = 600 and noise ~ N(0.3, 0.03) on [0, 0.5] (App. H.1), and the erratum's
    constants are read from it, not restated (a spec with another budget moves them)."""
    import importlib

    from safepce.tabular import registry

    defaults = registry.family_spec("gridworld").defaults()
    assert {k: defaults[k] for k in ("gamma", "budget", "horizon", "mean", "std", "low", "high",
                                     "radius", "safe_parameter")} == {
        "gamma": 0.9, "budget": 1.5, "horizon": 600, "mean": 0.3, "std": 0.03, "low": 0.0,
        "high": 0.5, "radius": 0.005, "safe_parameter": 0.4}
    assert "budget" in registry.family_spec("gridworld").parameters()
    import safepce.bounds.erratum as erratum

    assert (erratum.H, erratum.BUDGET, erratum.GAMMA) == (600, 1.5, 0.9)

    def other(budget: float = 2.5, gamma: float = 0.8):
        raise AssertionError("not built")

    monkeypatch.setitem(registry.FAMILIES, "gridworld", registry.FamilySpec(
        "gridworld", other, "", horizon=300))
    try:
        moved = importlib.reload(erratum)
        assert (moved.H, moved.BUDGET, moved.GAMMA) == (300, 2.5, 0.8)
    finally:
        monkeypatch.undo()
        importlib.reload(erratum)
