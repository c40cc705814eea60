"""``python -m safepce``: the command line, as the ``safepce`` script."""

import sys

from safepce.bounds.cli import main

sys.exit(main())
