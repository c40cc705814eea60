"""`safepce reproduce` and the violation-rate sweep at small sizes."""

import csv
import json

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds.cli import main
from safepce.theory.experiment import (
    PAPER_TEST_TASKS,
    ExperimentSettings,
    ViolationSettings,
    experiment_training,
    reproduce,
    violation_rates,
)
from safepce.theory.harness import RunRecord
from safepce.theory.results import load
from safepce.theory.settings import SettingsError


def test_reproduce_small(tmp_path):
    out = tmp_path / "repro"
    argv = ["reproduce", "--out", str(out), "--episodes", "2500", "--tasks", "3", "--quiet",
            "--algorithms", "safe-pce", "pce", "safe-pce-theory"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 9
    assert summary["settings"]["algorithms"]["safe-pce"]["preset"] == "paper-experiment"
    by_key = {r["key"]: r for r in summary["results"]}
    assert by_key["safe-pce-theory"]["preset"] == "theory"
    assert by_key["safe-pce-theory"]["algorithm"] == "safe-pce"
    for key in ("safe-pce", "pce", "safe-pce-theory"):
        mine = [r for r in rows if r["key"] == key]
        finals = np.array([float(r["final_regret"]) for r in mine])
        assert by_key[key]["final_regret_mean"] == pytest.approx(finals.mean())
        assert by_key[key]["violations"] == sum(int(r["violations"]) for r in mine)
        assert by_key[key]["runs"] == 3
    # The theory preset never leaves pi_s at this scale: its regret is exactly K (V* - V(pi_s)).
    training, _ = experiment_training(ExperimentSettings())
    for row in (r for r in rows if r["key"] == "safe-pce-theory"):
        task = tabular.gridworld(float(row["task_noise"]))
        gap = tabular.solve(task).reward_value - tabular.evaluate(
            task, training.safe_policy).reward_value
        assert float(row["final_regret"]) == pytest.approx(2500 * gap, rel=1e-9)
        assert int(row["safe_only_episodes"]) == 2500
    # Safe-PCE spends its first 1000 episodes on pi_s (no test before n = 1000)
    assert all(int(r["safe_only_episodes"]) >= 1000 for r in rows if r["key"] == "safe-pce")
    assert [float(r["task_noise"]) for r in rows[:3]] == list(PAPER_TEST_TASKS[:3])
    for name in ("figure1.png", "figure1.pdf", "figure2.png", "figure2.pdf", "curves.npz",
                 "training.npz"):
        assert (out / name).stat().st_size > 1000
    # the folder reads back: curves in long form keyed by runs.csv's row
    loaded = load(out)
    assert loaded.command == "reproduce" and len(loaded.runs) == 9
    for row, run in enumerate(loaded.runs):
        cost = loaded.curve(row, "cost_value")
        assert cost.size == 2500
        assert float(cost.max()) == pytest.approx(run["max_cost_value"], rel=1e-6)


def test_reproduce_with_baselines_does_not_depend_on_workers(tmp_path):
    """The six algorithms on two workers give the records of one process, bit for bit; the
    summary and the figures carry the baselines under their keys."""
    settings = ExperimentSettings(episodes=1200, tasks=2)
    assert settings.algorithms == ("safe-pce", "pce", "safe-meta-rl", "dope-plus", "dope",
                                   "lb-sgd", "safe-pce-certified")
    _, _, one, rows_one = reproduce(settings, progress=False, workers=1)
    _, _, two, rows_two = reproduce(settings, progress=False, workers=2)
    for key in settings.algorithms:
        for a, b in zip(one[key], two[key], strict=True):
            assert np.array_equal(a.reward_value, b.reward_value)
            assert np.array_equal(a.cost_value, b.cost_value)
    assert rows_one == rows_two                 # no timing in a row: the tables are equal
    from safepce.theory.results import write_table

    write_table(tmp_path / "one.csv", rows_one)
    write_table(tmp_path / "two.csv", rows_two)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    out = tmp_path / "repro"
    assert main(["reproduce", "--out", str(out), "--episodes", "1200", "--tasks", "2",
                 "--quiet", "--workers", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    by_key = {r["key"]: r for r in summary["results"]}
    for key in ("safe-meta-rl", "dope-plus", "dope", "lb-sgd"):
        assert by_key[key]["runs"] == 2
        assert by_key[key]["preset"] == "paper-experiment"
        assert summary["settings"]["algorithms"][key]["parameters"]["preset"] == \
            "paper-experiment"
    parameters = summary["settings"]["algorithms"]["lb-sgd"]["parameters"]
    assert (parameters["start"], parameters["start_temperature"], parameters["units"]) == \
        ("soft", 8.0, "raw")
    assert summary["settings"]["algorithms"]["safe-meta-rl"]["parameters"]["start"] == "pi_s"
    # 1,200 episodes: DOPE and DOPE+ are still in their 14,000-episode warm-up on pi_s
    training, _ = experiment_training(ExperimentSettings())
    for key in ("dope", "dope-plus"):
        for record, noise in zip(one[key], PAPER_TEST_TASKS, strict=False):
            task = tabular.gridworld(noise)
            assert record.reward_value[-1] == pytest.approx(
                tabular.evaluate(task, training.safe_policy).reward_value, rel=1e-12)
    for name in ("figure2.png", "figure2_appendix.png"):
        assert (out / name).stat().st_size > 1000


def test_violation_rates_do_not_depend_on_workers(tmp_path):
    training, _ = experiment_training(ExperimentSettings())
    path = training.save(tmp_path / "training.npz")
    settings = ViolationSettings(runs=6, episodes=1500, seed=4, algorithms=("safe-pce", "pce"))
    one = violation_rates(path, settings, workers=1, progress=False)
    two = violation_rates(path, settings, workers=2, progress=False)
    assert one == two
    pce = next(r for r in one["per_algorithm"] if r["key"] == "pce")
    assert pce["clopper_pearson_low"] <= pce["fraction"] <= pce["clopper_pearson_high"]


def test_violations_runs_the_scaled_preset(tmp_path):
    """The registry's scaled preset carries its factor: the command that used to fail after
    training (issue 11) runs, and its rows name key, algorithm and preset."""
    out = tmp_path / "v"
    assert main(["violations", "--out", str(out), "--algorithms", "safe-pce-scaled", "--runs",
                 "4", "--episodes", "2000", "--workers", "1", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert {(r["key"], r["algorithm"], r["preset"]) for r in rows} == {
        ("safe-pce-scaled", "safe-pce", "scaled")}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"][0]["runs"] == 4
    assert (out / "violations.png").exists() and (out / "violations.pdf").exists()


@pytest.mark.parametrize(("field", "value"), [("episodes", 0), ("tasks", 11), ("radius", 0.0),
                                              ("delta", 0.5), ("algorithms", ("ppo",))])
def test_settings_are_validated(field, value):
    with pytest.raises(SettingsError, match=f"^--{field}"):
        ExperimentSettings(**{field: value}).validate()


def test_reproduce_bad_input_exits_2(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--tasks", "0", "--quiet"]) == 2
    assert "--tasks" in capsys.readouterr().err


def test_report_authors_hides_exactly_the_violating_runs(tmp_path):
    """`reproduce --report authors` on the published tasks: Safe-PCE's recorded cost never
    exceeds the budget, on exactly the runs whose full record violates (each stopped at its
    first violating episode); the default report shows those violations. Both figures exist."""
    out = tmp_path / "authors"
    assert main(["reproduce", "--out", str(out), "--algorithms", "safe-pce", "--report",
                 "authors", "--quiet"]) == 0
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert all(int(r["violations"]) == 0 and float(r["max_cost_value"]) <= 1.5 for r in rows)
    stopped = [r["first_violation_episode"] != "" for r in rows]
    full = [RunRecord.load(p) for p in sorted((out / "store").glob("safe-pce-*.npz"))]
    assert stopped == [bool(r.violated.any()) for r in full]
    assert 1 <= sum(stopped) <= 9            # some runs violate, and they are all hidden
    for row, record in zip(rows, full, strict=True):
        if row["first_violation_episode"]:
            k = int(row["first_violation_episode"])
            assert record.cost_value[k - 1] > 1.5 >= record.cost_value[:k - 1].max()
    assert (out / "figure2_as_published.png").exists() and (out / "figure2.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["report"] == "authors"
    assert summary["results"][0]["runs_with_violation"] == 0
    # the same folder, the default report: the stored runs are reused, the violations shown
    assert main(["reproduce", "--out", str(out), "--algorithms", "safe-pce", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["report"] == "every-episode"
    assert summary["results"][0]["runs_with_violation"] == sum(stopped)


def test_size_selects_the_sparse_gridworld_and_only_for_the_gridworld():
    from safepce.theory.experiment import ExperimentSettings, experiment_family
    from safepce.theory.settings import SettingsError

    distribution, spec = experiment_family(ExperimentSettings(size=10))
    task = distribution.build([0.3])
    assert task.is_sparse and task.n_states == 100 and spec.name == "gridworld"
    # the same dynamics rule as the paper's grid: noise p moves 0.75 p of TV at interior cells
    other = distribution.build([0.2])
    assert tabular.distance(task, other, units="task") == pytest.approx(0.075, abs=1e-12)
    with pytest.raises(SettingsError, match="--size"):
        ExperimentSettings(family="arms", size=10).validate()


def test_violation_items_carry_the_noise_model(tmp_path):
    """A worker rebuilds the family from the item alone: Section 6's noise model must reach it
    (the kernel of a task it builds is the text's), and the code's model adds no key (earlier
    stores keep their keys)."""
    from safepce.theory.experiment import (
        ViolationSettings,
        experiment_family,
        item_family,
        violation_items,
    )

    for model in ("text", "code"):
        settings = ViolationSettings(runs=2, noise_model=model)
        (_, item), _ = violation_items(tmp_path / "training.npz", settings)[:2]
        assert ("noise_model" in item) == (model == "text")
        distribution, _ = experiment_family(item_family(item))
        task = distribution.build([0.3])
        np.testing.assert_array_equal(task.P if not hasattr(task.P, "toarray")
                                      else task.P.toarray(),
                                      tabular.gridworld_kernel(0.3, model))


@pytest.mark.parametrize(("command", "family"), [("reproduce", "random-sparse-plane"),
                                                 ("violations", "random-sparse-plane"),
                                                 ("reproduce", "gridworld-energy"),
                                                 ("violations", "gridworld-energy")])
def test_commands_run_families_of_two_parameters_or_two_constraints(tmp_path, command, family):
    """reproduce and violations with the certified algorithm on a 2-parameter family (runs.csv
    has one task column per parameter, and the task built from both) and on the two-constraint
    gridworld (a violation of either constraint counts)."""
    out = tmp_path / "o"
    size = ["--tasks", "2"] if command == "reproduce" else ["--runs", "2"]
    assert main([command, "--family", family, "--algorithms", "safe-pce-certified",
                 "--episodes", "60", *size, "--workers", "1", "--quiet", "--out", str(out)]) == 0
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    names = ("theta_1", "theta_2") if family == "random-sparse-plane" else ("noise",)
    assert len(rows) == 2 and all(f"task_{n}" in rows[0] for n in names)
    if family == "random-sparse-plane" and command == "reproduce":
        from safepce.tabular import families

        theta = [float(rows[0][f"task_{n}"]) for n in names]
        built = families.make(family).build(theta)
        assert float(rows[0]["optimal_value"]) == pytest.approx(
            tabular.solve(built).reward_value, rel=1e-9)


def test_a_new_family_reaches_every_command_with_its_own_defaults(tmp_path, monkeypatch):
    """One registration (a factory and its defaults: gamma 0.7 inside the factory, horizon 25,
    radius 0.02) and the family runs through train and reproduce with those defaults, the
    train flags its factory takes (--gamma) reaching it and the others refused."""
    from safepce.tabular import registry
    from safepce.tabular.distributions import InterpolatedKernels

    def toy(gamma: float = 0.7, budget: float = 0.5, seed: int = 3):
        rng = np.random.default_rng(seed)
        P_a, P_b = (rng.dirichlet(np.ones(3), size=(3, 2)) for _ in range(2))
        r = np.array([[0.0, 1.0]] * 3)
        cost = np.array([[0.0, 1.0]] * 3)
        return InterpolatedKernels(P_a, P_b, r, cost, budget / (1 - gamma), np.full(3, 1 / 3),
                                   gamma)

    monkeypatch.setitem(registry.FAMILIES, "toy", registry.FamilySpec(
        "toy", toy, "a test family", oracle="distance", radius=0.02, horizon=25))
    defaults = registry.FAMILIES["toy"].defaults()       # the family's own, from one place
    assert (defaults["gamma"], defaults["budget"], defaults["horizon"]) == (0.7, 0.5, 25)
    assert main(["train", "--family", "toy", "--gamma", "0.6", "--budget", "0.4", "--heldout",
                 "20", "--quiet", "--out", str(tmp_path / "t")]) == 0
    trained = load(tmp_path / "t").summary
    assert trained["settings"]["distribution"] == {"family": "toy", "gamma": 0.6, "budget": 0.4}
    assert trained["settings"]["radius"] == 0.02
    assert main(["reproduce", "--family", "toy", "--algorithms", "safe-pce-certified", "pce",
                 "--tasks", "2", "--episodes", "40", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "r")]) == 0
    summary = load(tmp_path / "r").summary
    assert summary["settings"]["horizon"] == 25
    assert not (tmp_path / "r" / "figure1.png").exists()        # no Figure 1 for this family
