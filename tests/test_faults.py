"""Faults met while running (a full disk, a file-size limit, a folder made read-only, damaged
files read back, malformed family files): one line on stderr, exit code 1 for a fault and 2 for
bad input, no traceback, and nothing already stored lost: the same command, once the cause is
gone, resumes to the table of an uninterrupted run (byte for byte)."""

import errno
import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from safepce import tabular
from safepce.bounds.cli import main
from safepce.tabular import families
from safepce.theory import results

VIOLATIONS = ["violations", "--runs", "30", "--episodes", "600", "--algorithms", "pce",
              "--workers", "1", "--quiet"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("safepce") and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "o"
    assert main([*VIOLATIONS, "--out", str(out)]) == 0
    return (out / "runs.csv").read_bytes()


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "No space left on device"),
                                             (errno.EROFS, "Read-only file system"),
                                             (errno.EFBIG, "File too large"),
                                             (errno.EACCES, "Permission denied")])
def test_a_write_fault_mid_sweep_keeps_what_was_stored(tmp_path, capsys, monkeypatch, reference,
                                                        code, words):
    """The 12th run record fails to be written: exit 1, one line naming the fault; the 11
    stored records are intact, and the same command then resumes to the reference table."""
    from safepce.theory import sweep

    real = sweep.ResultStore.write
    calls = []

    def failing(self, key, record):
        calls.append(key)
        if len(calls) == 12:
            raise OSError(code, __import__("os").strerror(code), str(self.runs / f"{key}.json"))
        return real(self, key, record)

    monkeypatch.setattr(sweep.ResultStore, "write", failing)
    out = tmp_path / "o"
    assert main([*VIOLATIONS, "--out", str(out)]) == 1
    line = one_line(capsys)
    assert f"I/O error: {words}" in line and "intact" in line and "resume" in line
    stored = sorted((out / "store" / "runs").glob("*.json"))
    assert len(stored) == 11 and all(json.loads(p.read_text())["key"] for p in stored)
    assert not list((out / "store" / "runs").glob(".*.tmp"))
    monkeypatch.setattr(sweep.ResultStore, "write", real)
    assert main([*VIOLATIONS, "--out", str(out)]) == 0
    assert (out / "runs.csv").read_bytes() == reference


def test_a_file_size_limit_is_one_line(tmp_path, reference):
    """A real RLIMIT_FSIZE (``ulimit -f``), in a child process: writing training.npz exceeds it
    (Python ignores SIGXFSZ, the write fails with EFBIG): exit 1, one line; without the limit
    the same command completes to the reference table."""
    out = tmp_path / "o"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, 4_000))

    done = subprocess.run([sys.executable, "-m", "safepce", *VIOLATIONS, "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 1 and "\n" not in err and "File too large" in err, err
    again = subprocess.run([sys.executable, "-m", "safepce", *VIOLATIONS, "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (out / "runs.csv").read_bytes() == reference


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    from safepce.bounds.cli import commands

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(commands, "plot_figure1", exhausted)
    assert main(["figure1", "--noise", "0.2", "--out", str(tmp_path / "o")]) == 1
    assert "out of memory" in one_line(capsys)


# --- damaged files read back --------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("folder") / "o"
    assert main(["reproduce", "--episodes", "600", "--tasks", "1", "--algorithms", "pce",
                 "--workers", "1", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(("name", "damage", "words"), [
    ("curves.npz", lambda b: b[: len(b) // 2], "expected safepce curves"),
    ("curves.npz", lambda b: b"not a zip at all", "expected safepce curves"),
    ("runs.csv", lambda b: b + b"1,2\n", "field counts differ"),
    ("runs.csv", lambda b: b"\xff\xfe\x00garbage" + b, "expected a safepce runs table"),
    ("summary.json", lambda b: b[:10], "expected a safepce summary.json"),
])
def test_load_refuses_damaged_files(folder, tmp_path, name, damage, words):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / name).write_bytes(damage((copy / name).read_bytes()))
    with pytest.raises(results.ResultsError, match=words):
        results.load(copy)
    assert results.load(folder).runs                 # the original reads back


# --- malformed family files -----------------------------------------------------------------------


def _family_arrays():
    tasks = [tabular.gridworld(0.2), tabular.gridworld(0.3)]
    header = {"format": families.FAMILY_FILE_FORMAT, "version": 1, "gamma": 0.9, "n_tasks": 2,
              "weights": None}
    return header, {"P": np.stack([t.P for t in tasks]), "r": np.stack([t.r for t in tasks]),
                    "cost": np.stack([t.cost for t in tasks]),
                    "budget": np.stack([np.asarray(t.budget) for t in tasks]),
                    "rho": np.stack([t.rho for t in tasks])}


def _huge_p(path, arrays, header):
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, array in {"header": np.array(json.dumps(header)), **arrays}.items():
            buffer = io.BytesIO()
            if name == "P":
                np.lib.format.write_array_header_1_0(buffer, {
                    "descr": "<f8", "fortran_order": False, "shape": (10**5, 1000, 4, 1000)})
                buffer.write(b"\0" * 64)
            else:
                np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())


FAMILY_CASES = {
    "header-not-an-object": (lambda h, a: (json.dumps([1, 2]), a), "not a safepce family file"),
    "header-not-json": (lambda h, a: ("{oops", a), "JSONDecodeError"),
    "no-gamma": (lambda h, a: (json.dumps({k: v for k, v in h.items() if k != "gamma"}), a),
                 "the header has no gamma"),
    "gamma-not-a-number": (lambda h, a: (json.dumps(h | {"gamma": "x"}), a), "gamma"),
    "counts-disagree": (lambda h, a: (json.dumps(h), a | {"r": a["r"][:1]}),
                        "different numbers of tasks"),
    "header-count-disagrees": (lambda h, a: (json.dumps(h | {"n_tasks": 3}), a),
                               "different numbers of tasks"),
    "0-d-P": (lambda h, a: (json.dumps(h), a | {"P": np.array(1.0)}), "array P has shape ()"),
    "complex-P": (lambda h, a: (json.dumps(h), a | {"P": a["P"] + 1e-3j}), "real entries"),
    "nan-P": (lambda h, a: (json.dumps(h), a | {"P": np.full_like(a["P"], np.nan)}), "finite"),
    "missing-rho": (lambda h, a: (json.dumps(h), {k: v for k, v in a.items() if k != "rho"}),
                    "has no array 'rho'"),
    "no-tasks": (lambda h, a: (json.dumps(h | {"n_tasks": 0}), {k: v[:0] for k, v in a.items()}),
                 "holds no task"),
}


@pytest.mark.parametrize("case", [*FAMILY_CASES, "truncated", "huge-declared-shape"])
def test_malformed_family_files_are_one_line(tmp_path, capsys, case):
    header, arrays = _family_arrays()
    path = tmp_path / "family.npz"
    if case == "truncated":
        families.save_family(path, [tabular.gridworld(0.2), tabular.gridworld(0.3)])
        path.write_bytes(path.read_bytes()[:2000])
        words = "is not a readable safepce family file"
    elif case == "huge-declared-shape":
        _huge_p(path, arrays, header)
        words = "declares shape (100000, 1000, 4, 1000)"
    else:
        make, words = FAMILY_CASES[case]
        text, changed = make(header, arrays)
        np.savez(path, header=np.array(text), **changed)
    for command in ("train", "reproduce"):
        code = main([command, "--family-file", str(path), "--out", str(tmp_path / command),
                     "--quiet"])
        line = one_line(capsys)
        assert code == 2 and words in line, (case, line)


# --- the engine failing under a sweep -----------------------------------------------------------


def killing_chunk(settings_list):
    """A sweep chunk whose item 5 kills its worker process from outside (as the OOM killer
    would)."""
    import os
    import signal

    out = []
    for s in settings_list:
        if s["x"] == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        out.append({"value": s["x"] ** 2})
    return out


def test_a_worker_killed_mid_sweep_is_an_engine_fault(tmp_path):
    """A local worker killed from outside: EngineError (a fault, exit 1 on the command line)
    naming the stored count; the stored runs are intact and a rerun without the fault
    completes them."""
    from safepce.theory.sweep import EngineError, ResultStore, make_executor, run_sweep

    store = ResultStore(tmp_path / "s", {"n": 12})
    items = [(f"{i:03d}", {"x": i}) for i in range(12)]
    with pytest.raises(EngineError, match=r"BrokenProcessPool.*runs are stored"):
        with make_executor("local", 2) as executor:
            run_sweep(items, killing_chunk, store, executor, progress=False)
    kept = store.done()
    assert "005" not in kept and "000" in kept
    from tests.theory.test_sweep import square_chunk

    with make_executor("local", 2) as executor:
        records = run_sweep(items, square_chunk, store, executor, progress=False)
    assert [r["value"] for r in records] == [i * i for i in range(12)]


def test_workers_are_capped_at_the_cores_with_a_note(monkeypatch, capsys):
    from safepce.theory import sweep

    monkeypatch.setattr(sweep, "available_cores", lambda: 4)
    assert sweep.cap_workers(1000) == 4
    assert "--workers 1000 capped at 4 (the cores available)" in capsys.readouterr().err
    assert sweep.cap_workers(3, jobs=2) == 2 and sweep.cap_workers(3) == 3
    assert capsys.readouterr().err == ""


def test_a_dask_scheduler_without_workers_is_refused_after_a_bounded_wait(tmp_path, capsys,
                                                                          monkeypatch):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from safepce.theory import sweep

    monkeypatch.setattr(sweep, "WORKER_TIMEOUT", 2)
    with LocalCluster(n_workers=0, dashboard_address=None) as cluster:
        code = main([*VIOLATIONS, "--engine", "dask", "--scheduler", cluster.scheduler_address,
                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "has no worker; waiting up to 2 s" in err[0]
    assert "has no worker after 2 s" in err[-1] and "dask worker" in err[-1]
