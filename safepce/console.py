"""The ``safepce`` script and ``python -m safepce``, kept light (it imports the command line only
when called) so that a Ctrl-C at any moment, during the imports included, ends in one line.

A Ctrl-C raises ``KeyboardInterrupt`` as Python's default handler does, and is also recorded
(:func:`sigint_recorded`): an interrupt can surface as another exception (an extension module
interrupted while it initialises reports ``ImportError: initialization failed``; a library may
wrap it), and :func:`was_interrupted` still recognises it."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from contextlib import contextmanager

_interrupted = threading.Event()
#: delay before a swallowed Ctrl-C is delivered again (:func:`sigint_recorded`)
REDELIVER_SECONDS = 0.05


def _on_sigint(signum, frame):
    _interrupted.set()
    raise KeyboardInterrupt


@contextmanager
def sigint_recorded():
    """Within the block, SIGINT raises ``KeyboardInterrupt`` and is recorded; the previous
    handler is restored afterwards unless an interrupt came (the caller then ignores further
    ones while it exits). Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    previous_hook = sys.unraisablehook

    def redeliver(unraisable):
        # a Ctrl-C that lands in code Python cannot raise from (a weakref callback, __del__)
        # is reported as "Exception ignored" and lost; deliver it again to the main thread
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: raised inside this hook it would be lost too
            timer = threading.Timer(REDELIVER_SECONDS, _thread.interrupt_main)
            timer.daemon = True
            timer.start()
            return
        previous_hook(unraisable)

    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if not _interrupted.is_set():
            signal.signal(signal.SIGINT, previous)


def was_interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or came from, a Ctrl-C received in :func:`sigint_recorded`."""
    return isinstance(exc, KeyboardInterrupt) or (
        _interrupted.is_set() and not isinstance(exc, SystemExit))


STARTING = "safepce: interrupted while starting; nothing was written"


def run(argv: list[str] | None = None) -> int:
    """:func:`safepce.bounds.cli.console` (the command line with a bounded exit after an
    interrupt); a Ctrl-C before the command started (while its modules load) gives one line
    and exit code 130, a Ctrl-C after it returned is ignored (its results are written)."""
    with sigint_recorded():
        try:
            from safepce.bounds.cli import console
        except BaseException as exc:
            if not was_interrupted(exc):
                raise
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print(STARTING, file=sys.stderr, flush=True)
            # nothing exists yet to clean up; exiting here also keeps the interpreter from
            # re-raising the signal at exit (it does when the interrupt surfaced inside an
            # extension module's import: exit status -2 instead of 130)
            os._exit(130)
    code = console(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code
