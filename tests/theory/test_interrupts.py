"""Interrupts: Ctrl-C (once or twice) stops a sweep within seconds with one line and exit code
130, keeping finished runs for the same command to resume; kill -9 of the main process takes
its workers with it."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMAND = [sys.executable, "-m", "safepce", "violations", "--runs", "400", "--episodes",
           "6000", "--algorithms", "safe-pce", "--workers", "2", "--quiet"]
REPRODUCE = [sys.executable, "-m", "safepce", "reproduce", "--episodes", "3000", "--tasks",
             "10", "--algorithms", "safe-meta-rl", "lb-sgd", "--workers", "2", "--quiet"]


def _start(out: Path, command=COMMAND) -> subprocess.Popen:
    # a shell's background jobs ignore SIGINT; a terminal's foreground job does not
    return subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_runs(out: Path, n: int, process: subprocess.Popen) -> None:
    runs = out / "store" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if runs.is_dir() and len(list(runs.glob("*.json"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the sweep did not store runs in time")


def _alive(out: Path) -> list[int]:
    """Processes (not zombies) whose command line names ``out``: the sweep and its workers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(out) in command and state != "Z":
            found.append(int(entry.name))
    return found


def _table(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "runs.csv").open()))


def test_ctrl_c_twice_stops_at_once_and_the_same_command_resumes(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run([*COMMAND, "--out", str(reference)], check=True, capture_output=True)
    out = tmp_path / "interrupted"
    process = _start(out)
    _wait_for_runs(out, 20, process)
    os.killpg(process.pid, signal.SIGINT)              # Ctrl-C reaches the process group
    started = time.time()
    time.sleep(0.2)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)          # a second Ctrl-C
    _, err = process.communicate(timeout=60)
    assert time.time() - started < 10
    assert process.returncode == 130
    # (on a machine with fewer cores than --workers, the cap is said on a line of its own)
    line = "\n".join(x for x in err.strip().splitlines()
                     if not x.startswith("safepce: --workers"))
    assert "\n" not in line and "Traceback" not in line
    assert "interrupted:" in line and "run the same command to resume" in line
    stored = int(line.split("interrupted: ")[1].split(" runs")[0])
    assert 20 <= stored < 400 and not (out / "runs.csv").exists()
    time.sleep(0.5)
    assert _alive(out) == []
    finished = subprocess.run([*COMMAND, "--out", str(out)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert _table(out) == _table(reference)


def test_kill_9_of_the_main_process_ends_its_workers(tmp_path):
    out = tmp_path / "killed"
    process = _start(out)
    _wait_for_runs(out, 10, process)
    assert len(_alive(out)) >= 2                        # the main process and its workers
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while _alive(out) and time.time() < deadline:
        time.sleep(0.1)
    assert _alive(out) == []


def test_an_interrupted_reproduce_resumes_to_the_same_table(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run([*REPRODUCE, "--out", str(reference)], check=True, capture_output=True)
    out = tmp_path / "interrupted"
    process = _start(out, REPRODUCE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "store").glob("*.npz"))) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "runs stored" in err and "\n" not in err.strip()
    stored = len(list((out / "store").glob("*.npz")))
    assert 3 <= stored < 20
    finished = subprocess.run([*REPRODUCE, "--out", str(out)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    # byte for byte: a resumed run's table is the uninterrupted one (no timing in it)
    assert (out / "runs.csv").read_bytes() == (reference / "runs.csv").read_bytes()
