"""The `safepce` command line: outputs hold the paper's numbers; bad input exits 2 in one line."""

import csv
import json

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds.cli import main
from safepce.tabular.families import PAPER_GRIDWORLD_OPTIMA


def test_figure1_writes_the_paper_optima(tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["figure1", "--out", str(out), "--noise", "0.1", "0.3"]) == 0
    rows = list(csv.DictReader((out / "optima.csv").open()))
    assert [float(r["noise"]) for r in rows] == [0.1, 0.3]
    for row in rows:
        assert float(row["reward_value"]) == pytest.approx(
            PAPER_GRIDWORLD_OPTIMA[float(row["noise"])], abs=1e-5)
        assert float(row["cost_value"]) == pytest.approx(1.5, abs=1e-7)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["noise"] == [0.1, 0.3]
    assert summary["wall_seconds"] > 0
    assert (out / "figure1.png").stat().st_size > 10_000
    # the stored policies attain the printed values by exact evaluation
    stored = np.load(out / "policies.npz")
    for noise, policy in zip(stored["noise"], stored["policies"], strict=True):
        value = tabular.evaluate(tabular.gridworld(float(noise)), policy).reward_value
        assert value == pytest.approx(PAPER_GRIDWORLD_OPTIMA[round(float(noise), 6)], abs=1e-5)


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["--noise", "1.5"], "--noise"),
        (["--noise", "0.45"], "smallest achievable discounted cost is 1.60"),
        (["--gamma", "1.0"], "--gamma"),
        (["--budget", "-1"], "--budget"),
        (["--out", "/proc/forbidden/x"], "--out"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, phrase):
    arguments = ["figure1", "--out", str(tmp_path / "o"), *argv]
    assert main(arguments) == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err and "\n" not in err


def test_wrong_typed_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["figure1", "--noise", "abc"])
    assert info.value.code == 2


@pytest.mark.parametrize(("family", "flag", "takes"), [("runnable", "--std", "--gamma"),
                                                        ("arms", "--budget", "--gamma"),
                                                        ("hard", "--mean", "--gamma")])
def test_train_refuses_a_family_flag_the_family_does_not_take(tmp_path, capsys, family, flag,
                                                               takes):
    """train's family flags go to the family's factory; one it does not take is refused in one
    line naming the flag and the ones it takes (read from the factory's signature), before any
    folder is made (it was a TypeError from inside the factory)."""
    out = tmp_path / "o"
    assert main(["train", "--family", family, flag, "0.1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{flag}: the {family} family has no parameter" in err
    assert err.endswith(f"it takes {takes}") and not out.exists()
