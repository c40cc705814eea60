"""How ``verify`` runs its claims: the :class:`VerifyContext` claim functions share, and
:func:`run_verify`, which keeps each finished claim in a resume store as data (its records and
the numbers its figures are drawn from, JSON) and draws the figures from that data, so a rerun
in the same folder skips the claims already done and draws the same figures."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from safepce.tabular.errors import InputError
from safepce.theory.results import atomic_write

from .record import Claim, ClaimCheck

#: where the figure functions named by :meth:`VerifyContext.add_figure` live
PLOT_MODULES = ("safepce.bounds.plots", "safepce.bounds.sandwich")
#: the version of a stored claim's JSON (a store of another version is refused, not misread)
STORE_VERSION = 1


@dataclass
class VerifyContext:
    """What claim functions share: sizes, workers, the output folder, results computed once
    (``cache``) and the figures they add (name -> the plot function's name and its data)."""

    out: Path
    quick: bool = True
    workers: int = 2
    progress: bool = False
    engine: str = "local"
    scheduler: str | None = None
    cache: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)

    def once(self, name: str, compute):
        if name not in self.cache:
            self.cache[name] = compute()
        return self.cache[name]

    def add_figure(self, name: str, plot: str, *data) -> None:
        """Record figure ``name``: ``plot`` (a function of :data:`PLOT_MODULES`) drawn from
        ``data`` (numbers, lists and dicts: it is stored as JSON and drawn from the stored
        copy)."""
        plot_function(plot)                       # a wrong name fails now, not after the runs
        self.figures[name] = {"plot": plot, "data": list(data)}


def plot_function(name: str):
    """The figure function ``name`` of :data:`PLOT_MODULES`."""
    for module in PLOT_MODULES:
        function = getattr(importlib.import_module(module), name, None)
        if callable(function):
            return function
    raise InputError(f"plot: expected a function of {PLOT_MODULES}; got {name!r}")


def _plain(value):
    """JSON's view of numpy values (anything else not JSON raises TypeError)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"a claim stored {type(value).__name__}, which the store cannot keep")


def encode(claims: list[Claim], figures: dict) -> str:
    """A finished claim's store entry: its records and its figures' data, as JSON text."""
    return json.dumps({"version": STORE_VERSION, "claims": [c.to_dict() for c in claims],
                       "figures": figures}, default=_plain, indent=1)


def decode(text: str, path: Path) -> tuple[list[Claim], dict]:
    """The (claims, figure data) of an entry written by :func:`encode`."""
    try:
        entry = json.loads(text)
        if entry.get("version") != STORE_VERSION:
            raise ValueError(f"version {entry.get('version')!r}")
        return [Claim.from_dict(c) for c in entry["claims"]], dict(entry["figures"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a readable claim record ({exc}); remove it to rerun that "
                         "claim") from None


def draw(figures: dict) -> dict:
    """name -> matplotlib Figure, drawn from stored figure data."""
    return {name: plot_function(spec["plot"])(*spec["data"]) for name, spec in figures.items()}


def run_verify(out: Path, quick: bool = True, workers: int = 2, progress: bool = True,
               claims: tuple[ClaimCheck, ...] | None = None,
               names: tuple[str, ...] = (), engine: str = "local",
               scheduler: str | None = None) -> tuple[list[Claim], dict]:
    """Run every claim function of ``claims`` (default :data:`safepce.bounds.claims.CLAIMS`),
    only those named in ``names`` when it is not empty; returns (claims, figures by name).
    ``engine``/``scheduler``: where the sandwich's runs go (local processes or Dask,
    :func:`safepce.theory.sweep.make_executor`). Resumable: each finished claim is kept under
    ``store/<name>.json`` in ``out`` and not run again."""
    if claims is None:
        from . import CLAIMS as claims
    context = VerifyContext(Path(out), quick=quick, workers=workers, progress=progress,
                            engine=engine, scheduler=scheduler)
    store = Path(out) / "store"
    store.mkdir(parents=True, exist_ok=True)
    results: list[Claim] = []
    figures: dict = {}
    selected = [check for check in claims if not names or check.name in names]
    for check in tqdm(selected, desc="verify", unit="claim", disable=not progress):
        path = store / f"{check.name}.json"
        if path.exists():
            done, added = decode(path.read_text(), path)
        else:
            before = set(context.figures)
            done = check.check(context)
            added = {k: v for k, v in context.figures.items() if k not in before}
            text = encode(done, added)
            atomic_write(path, lambda handle, data=text: handle.write(data))
            done, added = decode(text, path)        # every figure is drawn from stored data
        figures.update(added)
        results.extend(done)
    return results, draw(figures)

