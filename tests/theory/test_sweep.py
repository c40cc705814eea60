"""Sweeps: the result store, identical tables on any engine, and kill -9 then resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safepce.bounds.cli import main
from safepce.theory.sweep import ResultStore, StoreError, make_executor, run_sweep


def square_chunk(settings_list):
    return [{"value": s["x"] ** 2} for s in settings_list]


def test_store_records_resume_and_refusals(tmp_path):
    store = ResultStore(tmp_path / "s", {"n": 3})
    items = [(f"{i:03d}", {"x": i}) for i in range(3)]
    with make_executor("local", 1) as executor:
        records = run_sweep(items, square_chunk, store, executor, progress=False)
    assert [r["value"] for r in records] == [0, 1, 4]
    assert store.done() == {"000", "001", "002"}
    # a stray temporary file of a killed writer is cleaned, not read
    (store.runs / ".003.json.123.tmp").write_text("{")
    assert ResultStore(tmp_path / "s", {"n": 3}).done() == {"000", "001", "002"}
    with pytest.raises(StoreError, match="other settings"):
        ResultStore(tmp_path / "s", {"n": 4})
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        ResultStore(tmp_path / "foreign", {"n": 3})
    (store.runs / "001.json").write_text("{broken")
    with pytest.raises(StoreError, match="corrupt run record"):
        store.records()
    (store.root / "manifest.json").write_text("not json")
    with pytest.raises(StoreError, match="corrupt"):
        ResultStore(tmp_path / "s", {"n": 3})


def _table(folder: Path) -> list[dict]:
    return list(csv.DictReader((folder / "runs.csv").open()))


def test_same_table_on_one_worker_two_workers_and_dask(tmp_path):
    """Acceptance: a 200-run sweep on a Dask LocalCluster with 2 workers and on the local pool."""
    common = ["violations", "--runs", "200", "--episodes", "2000", "--algorithms", "safe-pce",
              "--quiet"]
    tables = []
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"]),
                        ("dask", ["--engine", "dask", "--workers", "2"])):
        assert main([*common, "--out", str(tmp_path / name), *extra]) == 0
        tables.append(_table(tmp_path / name))
    assert len(tables[0]) == 200
    assert tables[0] == tables[1] == tables[2]
    raw = [(tmp_path / n / "runs.csv").read_bytes() for n in ("one", "two", "dask")]
    assert raw[0] == raw[1] == raw[2]
    summaries = [json.loads((tmp_path / n / "summary.json").read_text())["results"]
                 for n in ("one", "two", "dask")]
    assert summaries[0] == summaries[1] == summaries[2]


def test_kill_and_resume_gives_the_uninterrupted_table(tmp_path):
    command = [sys.executable, "-m", "safepce", "violations", "--runs", "120", "--episodes",
               "6000", "--algorithms", "safe-pce", "--workers", "1", "--quiet"]
    reference = tmp_path / "reference"
    subprocess.run([*command, "--out", str(reference)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    runs = killed / "store" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline:
        if runs.exists() and len(list(runs.glob("*.json"))) >= 20:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored = len(list(runs.glob("*.json")))
    assert 20 <= stored < 120, "the sweep should have been killed mid-way"
    assert not (killed / "runs.csv").exists()
    finished = subprocess.run([*command, "--out", str(killed)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert _table(killed) == _table(reference)
