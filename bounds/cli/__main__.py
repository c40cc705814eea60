"""``python -m safepce.bounds.cli``: the command line."""

import sys

from . import console

if __name__ == "__main__":          # importing the module (documentation tools do) runs nothing
    sys.exit(console())
