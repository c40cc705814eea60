"""``python -m safepce``: the command line, as the ``safepce`` script."""

import sys

from safepce.console import run

if __name__ == "__main__":          # importing the module (documentation tools do) runs nothing
    sys.exit(run())
