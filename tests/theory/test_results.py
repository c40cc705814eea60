"""The one output format: strict JSON, atomic writes, Clopper-Pearson against the beta quantiles,
long-form curves read back, and every command's summary.json with the same keys."""

import json
import math

import numpy as np
import pandas
import pytest
from scipy.stats import beta

from safepce.bounds.cli import main
from safepce.theory import results


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1000), (436, 1000)])
def test_clopper_pearson_is_the_beta_quantile_interval(k, n):
    low, high = results.clopper_pearson(k, n)
    # the exact interval's definition: Beta(k, n-k+1) and Beta(k+1, n-k) quantiles
    expected_low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    expected_high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert low == pytest.approx(expected_low, abs=1e-9)
    assert high == pytest.approx(expected_high, abs=1e-9)


def test_clopper_pearson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="successes, trials"):
        results.clopper_pearson(5, 4)


def test_json_is_strict_and_writes_are_atomic(tmp_path):
    path = tmp_path / "s.json"
    results.write_json(path, {"a": math.nan, "b": np.float32(1.5), "c": np.arange(2),
                              "d": math.inf})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": 1.5, "c": [0, 1], "d": None}

    def broken(handle):
        handle.write("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        results.atomic_write(path, broken)
    assert json.loads(path.read_text())["b"] == 1.5          # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]   # no temporary left


def test_summary_refuses_nested_records():
    with pytest.raises(results.ResultsError, match=r"results\[1\]"):
        results.summary("x", {}, [{"a": 1}, {"a": [1, 2]}], 0.0)


def test_curves_round_trip_by_row(tmp_path):
    curves = [{"cost_value": np.array([1.0, 2.0, 3.0])}, {"cost_value": np.array([4.0, 5.0])}]
    results.write_curves(tmp_path / "curves.npz", curves)
    results.write_table(tmp_path / "runs.csv", [{"key": "a", "n": 3}, {"key": "b", "n": 2}])
    results.write_summary(tmp_path, "test", {"x": 1}, [{"key": "a"}], 1.0)
    loaded = results.load(tmp_path)
    assert loaded.runs == [{"key": "a", "n": 3}, {"key": "b", "n": 2}]
    assert loaded.curve(1, "cost_value").tolist() == [4.0, 5.0]
    assert loaded.curves["episode"].tolist() == [1, 2, 3, 1, 2]


def test_load_refuses_a_foreign_summary(tmp_path):
    (tmp_path / "summary.json").write_text('{"command": "x"}')
    with pytest.raises(results.ResultsError, match="expected the keys"):
        results.load(tmp_path)


def test_every_command_writes_the_same_summary_schema(tmp_path):
    """figure1, reproduce, violations and sweep-delta at tiny sizes (train and verify are checked
    in their own tests): same top-level keys, results a list pandas takes as is, figures as PNG
    and PDF."""
    commands = {
        "figure1": ["figure1", "--noise", "0.2"],
        "reproduce": ["reproduce", "--episodes", "600", "--tasks", "1", "--algorithms", "pce",
                      "--workers", "1", "--quiet"],
        "violations": ["violations", "--runs", "2", "--episodes", "600", "--algorithms", "pce",
                       "--workers", "1", "--quiet"],
        "sweep-delta": ["sweep-delta", "--deltas", "0.3", "--runs", "2", "--episodes", "600",
                        "--algorithms", "pce", "--workers", "1", "--quiet"],
    }
    for name, argv in commands.items():
        out = tmp_path / name
        assert main([*argv, "--out", str(out)]) == 0
        loaded = results.load(out)
        assert tuple(loaded.summary) == results.SUMMARY_KEYS
        assert loaded.command == name
        frame = pandas.DataFrame(loaded.summary["results"])
        assert len(frame) >= 1 and frame.map(np.isscalar).all().all()
        pngs = sorted(p.stem for p in out.glob("*.png"))
        assert pngs and pngs == sorted(p.stem for p in out.glob("*.pdf"))


def test_curves_keep_costs_within_the_violation_tolerance(tmp_path):
    """A cost 3e-9 above the budget 1.5 (a violation: the tolerance is 1e-9) must read back
    above 1.5 + 1e-9; float32 on disk (as before) rounds it to 1.5 exactly."""
    from safepce.theory.harness import VIOLATION_TOLERANCE

    cost = np.array([1.4, 1.5 + 3e-9, 1.5])
    path = results.write_curves(tmp_path / "curves.npz", [{"cost_value": cost}])
    with np.load(path) as data:
        back = data["cost_value"]
    assert back[1] > 1.5 + VIOLATION_TOLERANCE
    np.testing.assert_array_equal(back, cost)
