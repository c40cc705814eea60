"""Sweeps: many independent runs over a ``concurrent.futures.Executor``, with a resumable store.

* :class:`ResultStore` keeps one JSON record per finished run in ``OUT/store/runs/<key>.json``,
  each written atomically (temporary file, then rename), and a manifest naming the sweep's
  settings. A sweep killed at any moment (even ``kill -9``) loses at most the runs in flight;
  running the same command again skips every run already on disk. A folder that holds anything
  else (another sweep's store, foreign files, a corrupt record) is refused with a clear error,
  never overwritten.
* :func:`run_sweep` chunks the pending runs so that every task carries at least ~50 ms, submits
  them to a local process pool or a Dask cluster (``engine="dask"``: the given scheduler, or a
  LocalCluster), and stores results as they complete, with a progress bar. Every run's numbers
  depend only on its own settings (its seed included), so the final table is the same for any
  engine and any number of workers.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from safepce.tabular.errors import InputError, positive_int

from .progress import keep_alive
from .results import (
    LOCK,
    MANIFEST,
    atomic_write,
    differing_keys,
    jsonable,
    read_manifest,
    versions,
)

STORE_FORMAT = 1
MIN_TASK_SECONDS = 0.05
ENGINES = ("local", "dask")
#: seconds to wait for a Dask scheduler given by --scheduler before refusing it
SCHEDULER_TIMEOUT = 5
#: seconds to wait for a scheduler without workers to get one before refusing it
WORKER_TIMEOUT = 30


class StoreError(InputError):
    """The output folder holds something other than this sweep's store."""


class EngineError(OSError):
    """The engine running a sweep failed under it (a Dask scheduler or worker that died, a
    local worker process killed from outside): a fault, not bad input; the runs stored before
    it are kept, and the same command resumes."""


def engine_failures() -> tuple[type[BaseException], ...]:
    """The exceptions by which an engine reports that it failed under a sweep (work cancelled,
    a broken local pool, a closed Dask connection), turned into :class:`EngineError`."""
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    failures: tuple[type[BaseException], ...] = (CancelledError, BrokenProcessPool)
    try:
        from distributed.comm.core import CommClosedError
        failures += (CommClosedError,)
    except ImportError:
        pass
    return failures


class ResultStore:
    """One atomic JSON record per finished run, under ``folder/store``."""

    def __init__(self, folder: str | Path, sweep: dict):
        self.folder = Path(folder)
        self.root = self.folder / "store"
        self.runs = self.root / "runs"
        self.sweep = json.loads(json.dumps(sweep))          # JSON-normalised for comparison
        manifest = self.root / "manifest.json"
        if manifest.exists():
            found = read_manifest(manifest, StoreError, "remove it or choose another folder")
            if found.get("kind") != "safepce-sweep" or found.get("format") != STORE_FORMAT:
                raise StoreError(f"--out: {manifest} is not a safepce sweep store of format "
                                 f"{STORE_FORMAT}; choose another folder")
            if found.get("sweep") != self.sweep:
                differ = differing_keys(found.get("sweep", {}), self.sweep)
                raise StoreError(f"--out: {self.folder} holds a sweep with other settings "
                                 f"(differing: {', '.join(differ)}); choose another folder")
        else:
            # the output folder's manifest (theory.results) and the sweep's training may be
            # there already; anything else is foreign
            foreign = sorted(p.name for p in self.folder.iterdir()
                             if p.name not in (MANIFEST, LOCK, "training.npz")) \
                if self.folder.exists() else []
            if foreign:
                raise StoreError(f"--out: {self.folder} is not empty and holds no sweep store "
                                 f"(found {', '.join(foreign[:5])}); choose an empty folder")
            self.runs.mkdir(parents=True, exist_ok=True)
            self._atomic_write(manifest, {"kind": "safepce-sweep", "format": STORE_FORMAT,
                                          "sweep": self.sweep, "versions": versions()})
        self.runs.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _atomic_write(path: Path, payload: dict) -> None:
        text = json.dumps(jsonable(payload), allow_nan=False)
        atomic_write(path, lambda handle: handle.write(text))

    def done(self) -> set[str]:
        """Keys of the runs already stored (stray temporary files of a killed writer are
        removed; anything else unexpected is an error)."""
        keys = set()
        for path in self.runs.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink()
            elif path.suffix == ".json":
                keys.add(path.stem)
            else:
                raise StoreError(f"--out: unexpected file {path} in the sweep store")
        return keys

    def write(self, key: str, record: dict) -> None:
        self._atomic_write(self.runs / f"{key}.json", {"key": key, **record})

    def records(self) -> list[dict]:
        out = []
        for path in sorted(self.runs.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise StoreError(f"--out: corrupt run record {path} ({exc}); remove it to rerun "
                                 "that run") from None
        return out


#: glibc mallopt parameters: M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD
_MALLOC_OPTIONS = ((-1, 512 << 20), (-2, 64 << 20), (-3, 256 << 20))


def tune_process() -> bool:
    """Tune this process for safepce's workload: BLAS single-threaded (threadpoolctl; the
    linear algebra is on vectors and small matrices, where a second BLAS thread only spins:
    reproduce 49.6 -> 32.7 CPU-s, a 3e4-state GMRES solve 0.15 -> 0.02 CPU-s; processes give
    the parallelism), and freed memory kept in the process instead of handed back to the
    kernel at once (glibc only; returns True if applied). A run allocates and frees arrays of
    megabytes thousands of times (trajectory batches, sparse factorisations); by default glibc
    returns each to the kernel and the next one comes back as fresh zeroed pages. Measured on
    `safepce train --family gridworld --size 50 --heldout 200`: 22.1 -> 14.8 CPU-s, minor page
    faults 1.86M -> 85k. Called by the command line and by its worker processes, never on
    library import (it changes the process's allocator and BLAS; at most ~512 MB of freed
    memory is kept)."""
    threadpool_limits(limits=1, user_api="blas")
    try:
        libc = ctypes.CDLL(None)
        return all(libc.mallopt(option, value) == 1 for option, value in _MALLOC_OPTIONS)
    except (OSError, AttributeError):
        return False


def _worker_init() -> None:
    """In each worker process: leave Ctrl-C to the main process (the terminal sends it to the
    whole process group), and die with the main process even on kill -9 (Linux's
    PR_SET_PDEATHSIG; elsewhere the pool's own broken-pipe detection ends them); and the
    process tuned as the main process is (:func:`tune_process`)."""
    tune_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


#: seconds :func:`end_pool` waits for killed workers and the pool's manager thread to finish
REAP_SECONDS = 2.0


def end_pool(pool: ProcessPoolExecutor) -> bool:
    """End ``pool`` now, with every wait bounded by :data:`REAP_SECONDS`: cancel its queued work,
    kill its workers and reap them, and let its manager thread exit. Returns True when every
    worker was reaped and the manager thread ended.

    A worker killed while writing a result leaves a partial message on the result pipe; the
    pool's manager thread then waits in ``recv`` for bytes no process will send, and the
    interpreter joins that thread at exit, forever (seen: ``reproduce`` alive 49 minutes after
    Ctrl-C). This process holds the pipe's last write end once the workers are dead; closing it
    turns that wait into end-of-file, which the manager thread treats as a broken pool and
    exits. (Uses the executor's private ``_processes``, ``_result_queue`` and
    ``_executor_manager_thread`` of CPython 3.11, where this was measured; where absent, the
    killing and reaping still happen.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    deadline = time.monotonic() + REAP_SECONDS
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()
    if manager is not None:
        manager.join(timeout=max(0.0, deadline - time.monotonic()))
    return all(not p.is_alive() for p in processes) and not (
        manager is not None and manager.is_alive())


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cap_workers(workers: int, jobs: int | None = None) -> int:
    """``workers`` capped at the cores available (with a note on stderr) and at the number of
    jobs (silently): more processes than either only cost memory and start-up time."""
    positive_int("--workers", workers)
    cores = available_cores()
    if workers > cores:
        print(f"safepce: --workers {workers} capped at {cores} (the cores available)",
              file=sys.stderr, flush=True)
        workers = cores
    return min(workers, max(1, int(jobs))) if jobs is not None else workers


#: process pools open in this process: while any is, forked children start with SIGINT blocked
#: and then ignored (see :func:`_after_fork_child`)
_open_pools = 0


def _before_fork() -> None:
    if _open_pools and threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _after_fork_parent() -> None:
    if _open_pools and threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _after_fork_child() -> None:
    """A pool's worker ignores Ctrl-C from its first instruction: SIGINT is blocked across the
    fork (so one arriving then is held, not raised inside the child's after-fork code, as
    logging's lock release was seen to do) and ignored before it is unblocked (a held one is
    discarded). Only while a pool is open; other forks are untouched."""
    if _open_pools:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


if hasattr(os, "register_at_fork") and hasattr(signal, "pthread_sigmask"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)


@contextmanager
def process_pool(workers: int, jobs: int | None = None):
    """A process pool whose workers ignore Ctrl-C and die with this process; on an interrupt or
    any error in the block the queued work is cancelled and the workers are killed and reaped
    at once (:func:`end_pool`; finished results already handed out are kept by the caller)."""
    global _open_pools
    pool = ProcessPoolExecutor(max_workers=cap_workers(workers, jobs),
                               initializer=_worker_init)
    _open_pools += 1
    try:
        yield pool
    except BaseException:
        end_pool(pool)
        raise
    finally:
        _open_pools -= 1
    pool.shutdown(wait=True)


def check_scheduler(scheduler: str) -> None:
    """Refuse, before any work, a Dask scheduler address nothing answers at (a TCP connect with
    a :data:`SCHEDULER_TIMEOUT`-second limit)."""
    address = scheduler.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "localhost", int(port)),
                                 timeout=SCHEDULER_TIMEOUT).close()
    except ValueError:
        raise InputError(f"--scheduler: expected an address like tcp://HOST:PORT; got "
                         f"{scheduler!r}") from None
    except OSError as exc:
        raise InputError(f"--scheduler: nothing answers at {scheduler} ({exc.strerror or exc})"
                         ) from None


def map_runs(function: Callable[[tuple], list], jobs: list, workers: int,
             progress: bool = False, description: str = "runs") -> list:
    """``function`` over ``jobs`` (each returning a list of run records) on a
    :func:`process_pool`, the records flattened in job order (so independent of ``workers``)."""
    with process_pool(workers, len(jobs)) as pool:
        parts = tqdm(pool.map(function, jobs), total=len(jobs), disable=not progress,
                     desc=description)
        return [record for part in parts for record in part]


@contextmanager
def make_executor(engine: str = "local", workers: int = 2, scheduler: str | None = None,
                  jobs: int | None = None):
    """A ``concurrent.futures.Executor``: a process pool, or Dask's executor on the scheduler at
    ``scheduler`` (a LocalCluster of ``workers`` single-threaded processes when None).
    ``jobs``: how many jobs will be submitted (local workers are capped at it and at the
    cores, :func:`cap_workers`)."""
    if engine not in ENGINES:
        raise InputError(f"--engine: expected one of {ENGINES}; got {engine!r}")
    positive_int("--workers", workers)
    if engine == "local":
        with process_pool(workers, jobs) as pool:
            yield pool
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--engine: dask needs the optional extra: pip install "
                         "'safepce[dask]'") from None
    # the client logs its reconnection attempts with tracebacks when the scheduler dies; the
    # sweep reports that fault itself in one line (EngineError)
    quiet_logger = logging.getLogger("distributed.client")
    level = quiet_logger.level
    quiet_logger.setLevel(logging.CRITICAL)
    try:
        with _dask_executor(Client, LocalCluster, workers, scheduler, jobs) as executor:
            yield executor
    finally:
        quiet_logger.setLevel(level)


@contextmanager
def _dask_executor(Client, LocalCluster, workers: int, scheduler: str | None,
                   jobs: int | None):
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler: cannot reach a Dask scheduler at {scheduler} within "
                             f"{SCHEDULER_TIMEOUT} s ({type(exc).__name__})") from None
        cluster = None
        _wait_for_a_worker(client, scheduler)
    else:
        cluster = LocalCluster(n_workers=cap_workers(workers, jobs), threads_per_worker=1,
                               processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    # the workers connected now run as the command line does (workers that join later keep
    # their own BLAS threads and allocator: same numbers, more CPU)
    client.run(tune_process)
    try:
        yield client.get_executor()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _wait_for_a_worker(client, scheduler: str) -> None:
    """Wait at most :data:`WORKER_TIMEOUT` s for the scheduler to have a worker, saying so on
    stderr when it has none yet; refuse it in one line when none joins."""
    if client.scheduler_info().get("workers"):
        return
    print(f"safepce: the Dask scheduler at {scheduler} has no worker; waiting up to "
          f"{WORKER_TIMEOUT} s for one to join", file=sys.stderr, flush=True)
    try:
        client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise InputError(f"--scheduler: the Dask scheduler at {scheduler} has no worker after "
                         f"{WORKER_TIMEOUT} s ({type(exc).__name__}); start workers "
                         f"(dask worker {scheduler}) or leave --scheduler out for a local "
                         "cluster") from None


def run_sweep(items: list[tuple[str, dict]], run_chunk: Callable[[list[dict]], list[dict]],
              store: ResultStore, executor: Executor, progress: bool = True,
              description: str = "sweep") -> list[dict]:
    """Run every ``(key, settings)`` item not yet in ``store`` and return all stored records.

    ``run_chunk`` (a module-level function, so that it pickles) maps a list of settings to one
    record each. The first pending item runs here to time it; the rest go out in chunks of
    ``ceil(0.05 s / that time)`` items.
    """
    finished = store.done()
    pending = [(key, settings) for key, settings in items if key not in finished]
    bar = tqdm(total=len(items), initial=len(items) - len(pending), desc=description,
               unit="run", disable=not progress)
    with keep_alive(bar):
        _run_pending(pending, items, run_chunk, store, executor, bar)
    bar.close()
    return store.records()


def _run_pending(pending, items, run_chunk, store, executor, bar) -> None:
    if pending:
        start = time.perf_counter()
        key, settings = pending[0]
        store.write(key, run_chunk([settings])[0])
        bar.update(1)
        per_item = max(time.perf_counter() - start, 1e-4)
        size = max(1, math.ceil(MIN_TASK_SECONDS / per_item))
        rest = pending[1:]
        chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
        futures = {executor.submit(run_chunk, [s for _, s in chunk]): chunk for chunk in chunks}
        try:
            for future in as_completed(futures):
                chunk = futures[future]
                for (key, _), record in zip(chunk, future.result(), strict=True):
                    store.write(key, record)
                bar.update(len(chunk))
        except engine_failures() as exc:
            raise EngineError(f"the {type(executor).__name__} running the sweep failed "
                              f"({type(exc).__name__}: {str(exc) or 'its work was cancelled'}); "
                              f"{len(store.done())} of {len(items)} runs are stored") from None
