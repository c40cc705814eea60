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
