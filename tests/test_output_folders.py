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
    # following the advice (remove it to retrain) leaves a folder that resumes: the store's
    # identity is the training's content, and retraining with the same seed gives the same
    before = (out / "store" / "manifest.json").read_bytes()
    (out / "training.npz").unlink()
    assert run("violations", out) == 0
    assert (out / "store" / "manifest.json").read_bytes() == before


# --- --overwrite clears only what safepce wrote -----------------------------------------------


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", ["git", "foreign-beside-manifest", "no-manifest", "cwd",
                                  "parent-of-cwd"])
def test_overwrite_refuses_folders_safepce_did_not_write(tmp_path, capsys, monkeypatch, case):
    """Every refusal is one line, exit 2, and the folder is left exactly as it was."""
    out = tmp_path / "o"
    if case in ("git", "foreign-beside-manifest"):
        assert run("figure1", out) == 0
        if case == "git":
            (out / ".git").mkdir()
            (out / ".git" / "HEAD").write_text("ref: refs/heads/main")
        else:
            (out / "my-notes.txt").write_text("mine")
    elif case == "no-manifest":
        out.mkdir()
        (out / "summary.json").write_text("{}")       # a name safepce uses, but no manifest
    else:
        assert run("figure1", out) == 0
        (out / "sub").mkdir()
        monkeypatch.chdir(out if case == "cwd" else out / "sub")
    before = _listing(tmp_path)
    capsys.readouterr()
    target = {"cwd": ".", "parent-of-cwd": ".."}.get(case, str(out))
    assert main([*SMALL["reproduce"], "--out", target, "--overwrite"]) == 2
    line = one_line(capsys)
    assert "--overwrite" in line and "choose another --out" in line
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("exists", [False, True])
def test_overwrite_on_a_new_or_empty_folder_runs(tmp_path, exists):
    """--overwrite on a folder that does not exist yet (or is empty) is a first run: the
    command's own lock, taken before the check, is no reason to refuse (it was, on 4f11d09)."""
    out = tmp_path / "o"
    if exists:
        out.mkdir()
    assert run("figure1", out, "--overwrite") == 0
    assert (out / "figure1.png").exists()


def test_overwrite_clears_a_safepce_folder(tmp_path):
    out = tmp_path / "o"
    assert run("violations", out) == 0
    (out / ".runs.csv.123.tmp").write_text("a killed writer's temporary file")
    assert run("figure1", out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "figure1.pdf", "figure1.png", "optima.csv", "policies.npz", "summary.json"]


# --- a folder's identity: every setting and the content of every input -------------------------


def _other(value, f):
    """A value of field ``f`` different from ``value`` (validity does not matter here: the
    identity is compared before any work)."""
    choices = f.metadata.get("choices")
    if callable(choices):
        choices = choices()
    if isinstance(value, bool):
        return not value
    if isinstance(value, tuple):
        return (*value, value[0]) if value else ("x",)
    if choices and not isinstance(value, tuple):
        return next(c for c in choices if c != value)
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.125
    if value is None:
        return 7
    return f"{value}-other"


def _command_fields():
    import dataclasses

    from safepce.bounds.cli import COMMANDS

    return [(command, f) for command in COMMANDS for f in dataclasses.fields(command.settings)]


@pytest.mark.parametrize(("command", "field"), _command_fields(),
                         ids=lambda x: getattr(x, "name", str(x)))
def test_every_setting_is_part_of_the_folder_identity(tmp_path, command, field):
    """Changing any one setting of any command (the seed included) makes the folder refuse to
    resume, naming that setting."""
    import dataclasses

    from safepce.bounds.cli.flags import RunSettings, take_output
    from safepce.theory.results import OutputFolderError, release_output

    settings = command.settings()
    run_settings = RunSettings(out=str(tmp_path / "o"))
    take_output(run_settings, command.name, settings)
    if field.name == "family_file":
        from safepce import tabular

        value = str(tabular.families.save_family(tmp_path / "fam.npz",
                                                 [tabular.gridworld(0.3)]))
    else:
        value = _other(getattr(settings, field.name), field)
    changed = dataclasses.replace(settings, **{field.name: value})
    try:
        with pytest.raises(OutputFolderError, match=f"differing: .*{field.name}"):
            take_output(run_settings, command.name, changed)
    finally:
        release_output()


def test_a_replaced_family_file_is_not_mixed_in(tmp_path, capsys):
    """The same path holding another family: refused, naming the file's hash (the runs already
    stored came from the first family)."""
    from safepce import tabular

    family = tmp_path / "fam.npz"
    tabular.families.save_family(family, [tabular.gridworld(n) for n in (0.2, 0.3)])
    argv = ["violations", "--family-file", str(family), "--runs", "2", "--episodes", "600",
            "--algorithms", "pce", "--workers", "1", "--quiet", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    tabular.families.save_family(family, [tabular.gridworld(n) for n in (0.25, 0.35)])
    capsys.readouterr()
    assert main(argv) == 2
    assert "differing: family_file_sha256" in one_line(capsys)


# --- one command per folder at a time ----------------------------------------------------------


def test_a_second_command_on_a_locked_folder_is_refused(tmp_path, capsys):
    """A running command holds the folder's lock; a second one is refused in one line naming the
    holder's pid and command, and the lock is released when the holder ends."""
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "o"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from safepce.theory.results import lock_output
        lock_output(Path({str(out)!r}), "reproduce")
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        import select

        ready, _, _ = select.select([holder.stdout], [], [], 60)     # a bounded wait
        assert ready and holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert run("figure1", out) == 2
        line = one_line(capsys)
        assert f"in use by a running command (pid {holder.pid}, safepce reproduce)" in line
        assert sorted(p.name for p in out.iterdir()) == [".safepce.lock"]
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert run("figure1", out) == 0
