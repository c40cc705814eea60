"""A progress line for work that has no steps to count (one long solve, building tasks): the
phase's name and its elapsed time, refreshed twice a second by a daemon thread until the block
ends, so that no command is silent for more than a second while it works."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from tqdm.auto import tqdm

#: seconds between refreshes of a :func:`status` line
REFRESH_SECONDS = 0.5


@contextmanager
def keep_alive(bar):
    """Refresh the tqdm ``bar`` (its elapsed time) twice a second while the block runs, so that
    a bar whose steps are long (one LP of a large task per step) never looks stalled."""
    if getattr(bar, "disable", True):
        yield bar
        return
    done = threading.Event()

    def refresh():
        while not done.wait(REFRESH_SECONDS):
            bar.refresh()

    thread = threading.Thread(target=refresh, daemon=True, name="safepce-progress")
    thread.start()
    try:
        yield bar
    finally:
        done.set()
        thread.join(timeout=2 * REFRESH_SECONDS)


@contextmanager
def status(description: str, enabled: bool = True):
    """Show ``description: <elapsed>`` on stderr while the block runs (nothing when not
    ``enabled``); the line is closed when the block ends, however it ends."""
    if not enabled:
        yield
        return
    bar = tqdm(total=None, desc=description, bar_format="{desc}: {elapsed}", leave=False)
    try:
        with keep_alive(bar):
            yield
    finally:
        bar.close()
