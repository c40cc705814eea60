"""Output folders: a folder holds one command's results with one set of settings; anything else
is refused in one line (exit 2) unless --overwrite, and nothing stale survives a run."""

import json

import pytest

from safepce.bounds.cli import main
from safepce.theory.results import MANIFEST

SMALL = {
    "violations": ["violations", "--runs", "2", "--episodes", "600", "--algorithms", "pce",
                   "--workers", "1", "--quiet"],
    "reproduce": ["reproduce", "--episodes", "600", "--tasks", "1", "--algorithms", "pce",
                  "--workers", "1", "--quiet"],
    "figure1": ["figure1", "--noise", "0.2"],
}


def run(name, out, *extra):
    return main([*SMALL[name], "--out", str(out), *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("safepce")
    return err


@pytest.mark.parametrize(("first", "second"), [("violations", "reproduce"),
                                               ("reproduce", "figure1"),
                                               ("figure1", "violations")])
def test_another_command_is_refused_unless_overwrite(tmp_path, capsys, first, second):
    out = tmp_path / "o"
    assert run(first, out) == 0
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert run(second, out) == 2
    assert f"holds results of `safepce {first}`" in one_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == before          # untouched
    assert run(second, out, "--overwrite") == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == second
    if first == "violations":
        assert not (out / "store" / "runs").exists()                  # the sweep is gone


def test_other_settings_are_refused_naming_them(tmp_path, capsys):
    out = tmp_path / "o"
    assert run("violations", out) == 0
    capsys.readouterr()
    assert main([*SMALL["violations"], "--out", str(out), "--delta", "0.2"]) == 2
    assert "other settings (differing: delta)" in one_line(capsys)


def test_nothing_stale_survives_and_foreign_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "o"
    assert run("reproduce", out) == 0
    (out / "figure9.png").write_bytes(b"stale")
    assert run("reproduce", out) == 0                                 # same settings: rerun
    assert not (out / "figure9.png").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert run("figure1", foreign) == 2
    assert "is not empty and holds no safepce results" in one_line(capsys)
    (out / MANIFEST).write_text("{broken")
    assert run("reproduce", out) == 2
    assert "is corrupt" in one_line(capsys)


def test_a_corrupt_training_file_is_named(tmp_path, capsys):
    out = tmp_path / "o"
    assert run("violations", out) == 0
    (out / "runs.csv").unlink()
    data = (out / "training.npz").read_bytes()
    (out / "training.npz").write_bytes(data[: len(data) // 2])        # truncated
    capsys.readouterr()
    assert run("violations", out) == 2
    assert "training.npz: not a readable safepce training result" in one_line(capsys)
