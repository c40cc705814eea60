"""``python -m safepce``: the command line, as the ``safepce`` script."""

import sys

from safepce.console import run

sys.exit(run())
