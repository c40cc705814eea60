"""Every CLI command answers bad input with one line on stderr and exit code 2 (the README's
table lists the same cases)."""

import pytest

from safepce.bounds.cli import main

CASES = [
    # (command line, words the message must contain)
    (["figure1", "--noise", "abc"], "invalid float value"),
    (["figure1", "--noise", "1.5"], "--noise"),
    (["figure1", "--noise", "0.45"], "smallest achievable discounted cost"),
    (["figure1", "--gamma", "1"], "--gamma"),
    (["train", "--delta", "0.5"], "--delta"),
    (["train", "--radius", "-1"], "--radius"),
    (["train", "--radius"], "expected one argument"),
    (["train", "--budget", "0.5"], "no policy meets the budget"),
    (["train", "--xi", "0.5"], "xi"),
    (["reproduce", "--episodes", "0"], "--episodes"),
    (["reproduce", "--tasks", "eleven"], "invalid int value"),
    (["reproduce", "--delta", "0"], "--delta"),
    (["reproduce", "--algorithms", "ppo"], "invalid choice"),
    (["reproduce", "--workers", "0"], "--workers: expected a positive integer"),
    (["violations", "--runs", "0"], "--runs"),
    (["violations", "--engine", "spark"], "invalid choice"),
    (["sweep-delta", "--deltas", "0.4"], "--deltas"),
    (["verify", "--workers", "0"], "--workers"),
    (["frobnicate"], "invalid choice"),
    (["train", "--family", "atari"], "invalid choice"),
    (["train", "--family", "runnable", "--std", "0.1"], "--std: the runnable family"),
    (["train", "--xi", "nan"], "--xi: expected a finite number"),
    (["reproduce", "--radius", "inf"], "--radius: expected a finite number"),
    (["reproduce", "--family-file", "/nonexistent/family.npz"], "--family-file"),
    (["violations", "--delta", "nan"], "--delta: expected a finite number"),
    (["figure1", "--budget", "nan"], "--budget: expected a finite number"),
    (["sweep-delta", "--deltas", "0.1", "nan"], "--deltas: expected a finite number"),
    (["figure1", "--noise", "-0.1"], "--noise"),
    (["figure1", "--noise", "inf"], "--noise: expected a finite number"),
    (["figure1", "--gamma", "0"], "--gamma"),
    (["figure1", "--gamma", "nan"], "--gamma: expected a finite number"),
    (["figure1", "--backend", "gurobi"], "invalid choice"),
    (["figure1", "--budget", "-1"], "--budget"),
    (["train", "--heldout", "0"], "--heldout"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--delta", "nan"], "--delta: expected a finite number"),
    (["train", "--radius", "0"], "--radius"),
    (["train", "--oracle", "nearest"], "invalid choice"),
    (["train", "--safe-oracle", "magic"], "invalid choice"),
    (["train", "--std", "0"], "--std"),
    (["train", "--gamma", "1"], "--gamma"),
    (["train", "--budget", "inf"], "--budget: expected a finite number"),
    (["train", "--xi", "-1"], "--xi"),
    (["train", "--radius", "1e-9"], "cannot stop at radius"),
    (["train", "--family-file", "/nonexistent/family.npz"], "--family-file"),
    (["reproduce", "--horizon", "0"], "--horizon"),
    (["reproduce", "--tasks", "0"], "--tasks"),
    (["reproduce", "--tasks", "11"], "--tasks"),
    (["reproduce", "--seed", "-1"], "--seed"),
    (["reproduce", "--radius", "-1"], "--radius"),
    (["reproduce", "--episodes", "-5"], "--episodes"),
    (["reproduce", "--episodes", "1e12"], "invalid int value"),
    (["reproduce", "--episodes", "1000000000000"], "GB of memory"),
    (["reproduce", "--family", "atari"], "invalid choice"),
    (["reproduce", "--algorithms"], "expected at least one argument"),
    (["violations", "--runs", "-1"], "--runs"),
    (["violations", "--episodes", "0"], "--episodes"),
    (["violations", "--horizon", "0"], "--horizon"),
    (["violations", "--delta", "0.4"], "--delta"),
    (["violations", "--algorithms", "ppo"], "invalid choice"),
    (["violations", "--workers", "0"], "--workers"),
    (["violations", "--runs", "2000000000"], "GB of memory"),
    (["violations", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"],
     "--scheduler: nothing answers"),
    (["violations", "--engine", "dask", "--scheduler", "nonsense"], "--scheduler"),
    (["sweep-delta", "--deltas", "0"], "--deltas"),
    (["sweep-delta", "--runs", "0"], "--runs"),
    (["sweep-delta", "--episodes", "0"], "--episodes"),
    (["sweep-delta", "--algorithms", "ppo"], "invalid choice"),
    (["verify", "--workers", "-1"], "--workers"),
    (["verify", "--quick", "yes"], "unrecognized arguments"),
    (["train", "--family", "runnable", "--noise-model", "text"],
     "--noise-model text: the runnable family has one noise model"),
    (["reproduce", "--size", "9", "--noise-model", "text"], "'text' on the 7 x 7 grid; got "
                                                            "'text' with size 9"),
    (["violations", "--noise-model", "paper"], "invalid choice"),
    (["figure1", "--noise-model", "paper"], "invalid choice"),
    (["train", "--family-file", "/proc/self/status"], "is not an .npz archive"),
    (["reproduce", "--family-file", "/tmp"], "--family-file: cannot read /tmp (Is a directory)"),
]


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    quiet = [] if argv[0] in ("figure1", "frobnicate") else ["--quiet"]
    command = argv if argv[0] == "frobnicate" else [argv[0], "--out", str(tmp_path / "o"),
                                                      *quiet, *argv[1:]]
    try:
        code = main(command)
    except SystemExit as exit_:          # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and "\n" not in err
    assert err.startswith("safepce") and "error:" in err


@pytest.mark.parametrize("command", ["figure1", "train", "reproduce", "violations", "verify",
                                     "sweep-delta"])
def test_unwritable_output_folder(command, capsys):
    assert main([command, "--out", "/proc/safepce-cannot-write-here"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out: expected a writable folder" in err and "\n" not in err
    assert main([command, "--out", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out: expected a folder name" in err and "\n" not in err


def test_help_shows_defaults_and_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["violations", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "runs per algorithm (default: 1000)" in text and "95% Clopper-Pearson" in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("safepce ")
