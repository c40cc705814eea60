"""The one output format of every ``safepce`` command, written and read back here.

An output folder holds:

* ``summary.json`` = ``{"command", "settings", "versions", "wall_seconds", "results"}``, where
  ``results`` is a list of flat records (scalar values only), so that
  ``pandas.DataFrame(summary["results"])`` takes it as is;
* ``runs.csv``, one row per run (a command without runs writes its per-item table instead), with
  the run's registry ``key`` beside ``algorithm`` and ``preset`` where algorithms run;
* ``curves.npz`` where a command keeps per-episode curves, in long form: arrays ``row`` (the
  run's row in runs.csv), ``episode`` (1-based) and one array per quantity;
* the figures, each as PNG and PDF.

Every file is written atomically (temporary file, ``fsync``, rename): a crash leaves the old
file or the new one, never a torn one. :func:`load` reads any command's folder back.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import os
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from safepce.tabular.errors import InputError, npz_problem

#: the top-level keys of every summary.json, in order
SUMMARY_KEYS = ("command", "settings", "versions", "wall_seconds", "results")
#: the distributions whose versions every summary records
VERSIONED = ("safepce", "numpy", "numba", "scipy", "cvxpy-base", "highspy", "clarabel")


class ResultsError(InputError):
    """An output folder cannot be read back (missing or malformed files)."""


def versions() -> dict[str, str]:
    """Installed versions of safepce and the libraries its numbers depend on."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def atomic_write(path: str | Path, write: Callable[[io.IOBase], None], binary: bool = False
                 ) -> Path:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, fsync it and
    rename it over ``path`` (atomic on POSIX file systems)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb" if binary else "w", **({} if binary else {"newline": ""})
                            ) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:         # a folder made read-only under us: the caller reports the fault
            pass
    return path


def jsonable(value):
    """``value`` with numpy scalars and arrays turned into Python ones and non-finite floats
    into None, so that the JSON written is strict (no NaN or Infinity)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(path: str | Path, payload) -> Path:
    """Strict JSON (see :func:`jsonable`), written atomically."""
    text = json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda handle: handle.write(text))


def write_table(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """A CSV with the union of the rows' keys as columns (first-seen order), atomically."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    return atomic_write(path, write)


def write_curves(path: str | Path, curves: Sequence[Mapping[str, np.ndarray]]) -> Path:
    """Per-episode curves in long form: ``curves[i]`` belongs to row i of runs.csv and maps
    each quantity's name to an array over its episodes (float64 on disk: a cost within 1e-9 of
    the budget, the violation test's tolerance, must stay distinguishable)."""
    names = list(dict.fromkeys(k for curve in curves for k in curve))
    lengths = [len(next(iter(curve.values()))) if curve else 0 for curve in curves]
    arrays = {
        "row": np.repeat(np.arange(len(curves), dtype=np.int32), lengths),
        "episode": np.concatenate([np.arange(1, n + 1, dtype=np.int32) for n in lengths])
        if curves else np.zeros(0, np.int32),
    }
    for name in names:
        arrays[name] = np.concatenate([np.asarray(curve[name], dtype=np.float64)
                                       for curve in curves]) if curves else np.zeros(0)
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays), binary=True)


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval for a binomial proportion."""
    if isinstance(trials, bool) or trials < 1 or not 0 <= successes <= trials:
        raise InputError(f"successes, trials: expected 0 <= successes <= trials and trials >= 1; "
                         f"got {successes}, {trials}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a number in (0, 1); got {confidence!r}")
    from scipy.stats import binomtest  # scipy.stats costs 0.6 s to import: only here

    interval = binomtest(int(successes), int(trials)).proportion_ci(confidence, method="exact")
    return float(interval.low), float(interval.high)


def summary(command: str, settings: Mapping, results: Sequence[Mapping],
            wall_seconds: float) -> dict:
    """The summary.json payload; every record of ``results`` must be flat."""
    for i, record in enumerate(results):
        nested = [k for k, v in record.items() if isinstance(v, (Mapping, list, tuple))]
        if nested:
            raise ResultsError(f"results[{i}]: expected a flat record; fields {nested} are not "
                               "scalars")
    return {"command": command, "settings": dict(settings), "versions": versions(),
            "wall_seconds": float(wall_seconds), "results": [dict(r) for r in results]}


def write_summary(out: str | Path, command: str, settings: Mapping,
                  results: Sequence[Mapping], wall_seconds: float) -> Path:
    """Write ``out/summary.json`` in the shared schema (:func:`summary`)."""
    return write_json(Path(out) / "summary.json", summary(command, settings, results,
                                                          wall_seconds))


# --- sizes that cannot fit ----------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux; else physical)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(fields: str, estimate: float, what: str) -> None:
    """Refuse, before any work, a size whose estimated memory exceeds what is available."""
    available = available_memory()
    if estimate > available:
        raise InputError(f"{fields}: {what} need about {estimate / 1e9:.3g} GB of memory, more "
                         f"than the {available / 1e9:.3g} GB available; lower {fields}")


# --- the output folder's manifest --------------------------------------------------------------

#: the file that names the command and settings whose results a folder holds
MANIFEST = ".safepce-manifest.json"
#: the lock file a running command holds (``fcntl.flock``), with its pid and command in it
LOCK = ".safepce.lock"
#: every name a command writes at the top of its output folder (glob patterns): ``--overwrite``
#: clears a folder only when everything in it matches one of them
OUTPUT_ENTRIES = (MANIFEST, LOCK, ".write-test", ".*.tmp", "summary.json", "runs.csv",
                  "curves.npz", "training.npz", "*_training.npz", "events.json", "cover.csv",
                  "optima.csv", "policies.npz", "verify.json", "claims.csv", "findings.csv",
                  "sandwich*.csv", "violation_vs_delta.csv", "store", "delta_*",
                  "counterexamples", "*.png", "*.pdf")


class OutputFolderError(ResultsError):
    """The output folder holds another command's, other settings' or foreign results."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def read_manifest(path: Path, error: type[InputError], advice: str) -> dict:
    """A manifest's JSON, or ``error`` naming the file when it cannot be read."""
    try:
        found = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"--out: {path} is corrupt ({exc}); {advice}") from None
    if not isinstance(found, dict):
        raise error(f"--out: {path} is corrupt (not a JSON object); {advice}")
    return found


def differing_keys(theirs: Mapping, ours: Mapping) -> list[str]:
    """The keys whose values differ between two settings dictionaries (sorted)."""
    return sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))


def check_clearable(folder: Path) -> None:
    """Refuse (:class:`OutputFolderError`, one line) to clear a folder that safepce may not have
    written entirely: the current folder or one that contains it, the home folder, a file
    system root, a folder holding ``.git``, a non-empty folder without a safepce manifest, or
    one holding any entry no command writes (:data:`OUTPUT_ENTRIES`)."""
    resolved = folder.resolve()
    cwd = Path.cwd().resolve()
    advice = "--overwrite clears only a safepce output folder; choose another --out"
    if resolved == cwd or resolved in cwd.parents:
        raise OutputFolderError(f"--overwrite: {folder} is the current folder or contains it; "
                                f"{advice}")
    if resolved == Path.home().resolve() or resolved.parent == resolved:
        raise OutputFolderError(f"--overwrite: {folder} is the home folder or a root; {advice}")
    # this process's own lock (taken before the check) is not a reason to refuse
    entries = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
    if ".git" in entries:
        raise OutputFolderError(f"--overwrite: {folder} holds .git; {advice}")
    if entries and MANIFEST not in entries:
        raise OutputFolderError(f"--overwrite: {folder} holds no safepce manifest ({MANIFEST}) "
                                f"but {', '.join(entries[:5])}; {advice}")
    foreign = [name for name in entries
               if not any(fnmatch.fnmatch(name, pattern) for pattern in OUTPUT_ENTRIES)]
    if foreign:
        raise OutputFolderError(f"--overwrite: {folder} holds entries safepce does not write "
                                f"({', '.join(foreign[:5])}); {advice}")


#: the lock files this process holds, by resolved folder
_LOCKS: dict[str, io.IOBase] = {}


def lock_output(folder: Path, command: str) -> bool:
    """Hold ``folder``'s :data:`LOCK` for this process (``fcntl.flock``, released by
    :func:`release_output` or when the process ends, however it ends): a second command
    started on the same folder is refused in one line naming the holder's pid and command.
    Without ``fcntl`` (Windows) nothing is locked. Returns True when the lock file was
    created here (so that a refused folder can be left as it was found)."""
    try:
        import fcntl
    except ImportError:
        return False
    key = str(folder.resolve())
    if key in _LOCKS:
        return False
    created = not (folder / LOCK).exists()
    handle = (folder / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OutputFolderError(f"--out: {folder} is in use by a running command ({holder}); "
                                "wait for it to end or choose another folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, safepce {command}")
    handle.flush()
    _LOCKS[key] = handle
    return created


def release_output(folder: Path | None = None, remove: bool = False) -> None:
    """Release the lock of ``folder`` (default: every folder this process locked,
    :func:`lock_output`); ``remove`` also deletes its lock file (for a folder that was refused,
    so that it is left as it was found)."""
    keys = list(_LOCKS) if folder is None else [str(Path(folder).resolve())]
    for key in keys:
        handle = _LOCKS.pop(key, None)
        if handle is None:
            continue
        if remove:
            Path(key, LOCK).unlink(missing_ok=True)
        handle.close()


def input_hashes(settings: Mapping) -> dict[str, str]:
    """Content hashes of the input files the settings name (``family_file``): a folder's
    identity includes them, so replacing an input file by another at the same path is seen."""
    import hashlib

    hashes = {}
    path = settings.get("family_file")
    if path:
        try:
            hashes["family_file_sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError as exc:
            raise InputError(f"--family-file: cannot read {path} ({exc.strerror})") from None
    return hashes


def claim_output(out: str | Path, command: str, settings: Mapping,
                 keep: tuple[str, ...] = (), overwrite: bool = False) -> bool:
    """Take the folder ``out`` for one run of ``command`` with ``settings``.

    A folder whose manifest names another command or other settings, or that holds files but no
    manifest, is refused with an error naming the difference, unless ``overwrite`` (which clears
    it first). Otherwise every entry except the manifest and those matching ``keep`` (glob
    patterns: a sweep's store, its training) is removed, so nothing stale survives the run.
    Returns True when the folder already held this command's results (a resumable command
    continues from its kept entries).
    """
    folder = Path(out)
    identity = {"command": command,
                "settings": jsonable(dict(settings) | input_hashes(settings))}
    manifest = folder / MANIFEST
    resuming = False
    if overwrite:
        check_clearable(folder)
        for entry in folder.iterdir():
            if entry.name != LOCK:
                _remove(entry)
    elif manifest.exists():
        found = read_manifest(manifest, OutputFolderError,
                              "remove it, choose another folder or pass --overwrite")
        if found.get("command") != command:
            raise OutputFolderError(
                f"--out: {folder} holds results of `safepce {found.get('command')}`; choose "
                "another folder or pass --overwrite")
        if found.get("settings") != identity["settings"]:
            differ = differing_keys(found.get("settings", {}), identity["settings"])
            raise OutputFolderError(
                f"--out: {folder} holds `safepce {command}` results with other settings "
                f"(differing: {', '.join(differ)}); rerun with the same settings to resume, "
                "choose another folder or pass --overwrite")
        resuming = True
    else:
        foreign = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
        if foreign:
            raise OutputFolderError(
                f"--out: {folder} is not empty and holds no safepce results (found "
                f"{', '.join(foreign[:5])}); choose an empty folder or pass --overwrite")
    for entry in folder.iterdir():
        if entry.name not in (MANIFEST, LOCK) and not any(fnmatch.fnmatch(entry.name, k)
                                                          for k in keep):
            _remove(entry)
    write_json(manifest, identity | {"versions": versions()})
    return resuming


def _parse(text: str):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


@dataclass(frozen=True)
class Results:
    """A command's output folder, read back: ``summary`` (the summary.json dict), ``runs``
    (runs.csv rows with numbers parsed; empty if the command wrote none) and ``curves`` (the
    long-form arrays, or None)."""

    folder: Path
    summary: dict
    runs: list[dict]
    curves: dict[str, np.ndarray] | None

    @property
    def command(self) -> str:
        return self.summary["command"]

    def curve(self, row: int, name: str) -> np.ndarray:
        """The per-episode array ``name`` of run ``row`` of runs.csv."""
        if self.curves is None:
            raise ResultsError(f"{self.folder}: holds no curves.npz")
        return self.curves[name][self.curves["row"] == row]


def load(out_dir: str | Path) -> Results:
    """Read any command's output folder (summary.json, runs.csv, curves.npz)."""
    folder = Path(out_dir)
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: expected a safepce summary.json ({exc})") from None
    if not isinstance(data, dict) or tuple(data) != SUMMARY_KEYS:
        raise ResultsError(f"{path}: expected the keys {SUMMARY_KEYS}")
    runs = []
    if (folder / "runs.csv").exists():
        try:
            with (folder / "runs.csv").open(newline="") as handle:
                raw = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ResultsError(f"{folder / 'runs.csv'}: expected a safepce runs table "
                               f"({type(exc).__name__}: {exc})") from None
        if any(None in row or None in row.values() for row in raw):
            raise ResultsError(f"{folder / 'runs.csv'}: expected a safepce runs table (rows "
                               "whose field counts differ from the header: a damaged file)")
        runs = [{k: _parse(v) for k, v in row.items()} for row in raw]
    curves = None
    if (folder / "curves.npz").exists():
        problem = npz_problem(folder / "curves.npz")
        if problem:
            raise ResultsError(f"{folder / 'curves.npz'}: expected safepce curves; it {problem}")
        try:
            with np.load(folder / "curves.npz", allow_pickle=False) as arrays:
                curves = {k: arrays[k] for k in arrays.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ResultsError(f"{folder / 'curves.npz'}: expected safepce curves "
                               f"({type(exc).__name__}: {exc})") from None
    return Results(folder, data, runs, curves)
