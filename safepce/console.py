"""The ``safepce`` script and ``python -m safepce``, kept light (it imports the command line only
when called) so that a Ctrl-C at any moment, during the imports included, ends in one line."""

from __future__ import annotations

import os
import signal
import sys


def run(argv: list[str] | None = None) -> int:
    """:func:`safepce.bounds.cli.console` (the command line with a bounded exit after an
    interrupt); a Ctrl-C before the command started (while its modules load) gives one line
    and exit code 130, a Ctrl-C after it returned is ignored (its results are written)."""
    try:
        from safepce.bounds.cli import console

        code = console(argv)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("safepce: interrupted while starting; nothing was written", file=sys.stderr,
              flush=True)
        # no pool, thread or file exists yet; exiting here also keeps the interpreter from
        # re-raising the signal at exit (it does when the interrupt surfaced inside an
        # extension module's import: exit status -2 instead of 130)
        os._exit(130)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code
