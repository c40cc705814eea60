"""The process pool's exit under the fault that hung ``reproduce`` after Ctrl-C: a worker dies
while writing its result, leaving a partial message on the pool's result pipe. The main process
must still end within seconds, its workers reaped (theory.sweep.end_pool)."""

import subprocess
import sys
import textwrap
import time

import pytest

#: the worker writes the header of a 1,000-byte message and 10 bytes of it to the pool's result
#: pipe (found in its own call stack: the executor's worker loop holds it), then kills itself:
#: the pipe holds a message no process will ever finish
SCRIPT = textwrap.dedent("""
    import os, signal, sys, struct, time
    from safepce.theory import sweep

    def die_mid_write(_):
        frame = sys._getframe()
        while frame is not None and "result_queue" not in frame.f_locals:
            frame = frame.f_back
        writer = frame.f_locals["result_queue"]._writer
        writer._send(struct.pack("!i", 1000) + b"x" * 10)
        os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        ending = sys.argv[1]
        try:
            with sweep.process_pool(2) as pool:
                pids = None
                future = pool.submit(die_mid_write, 0)
                time.sleep(1.0)                   # the worker has written and died by now
                pids = [p.pid for p in pool._processes.values()]
                print("pids", *pids, flush=True)
                if ending == "interrupt":
                    raise KeyboardInterrupt
                raise RuntimeError("an error in the block")
        except (KeyboardInterrupt, RuntimeError):
            states = []
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as handle:
                        states.append(handle.read().rsplit(")", 1)[1].split()[0])
                except OSError:
                    states.append("gone")
            print("ended", *states, flush=True)
""")


@pytest.mark.parametrize("ending", ["interrupt", "error"])
def test_a_worker_killed_mid_write_does_not_hang_the_exit(tmp_path, ending):
    script = tmp_path / "pool_exit.py"
    script.write_text(SCRIPT)
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(script), ending], capture_output=True, text=True,
                          timeout=20)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    # 1 s of sleep, interpreter start and the pool: the bounded shutdown adds at most 2 s
    assert elapsed < 8, elapsed
    # every worker reaped before the block's exception reached the caller (not even a zombie)
    states = done.stdout.split("ended", 1)[1].split()
    assert len(states) == 2 and set(states) == {"gone"}, states
