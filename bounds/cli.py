"""Entry point of the ``safepce`` console script.

bounds sits at the top of the import flow (tabular <- theory <- bounds), so the command line is
assembled here: theory's commands, with the bounds functions they report (covering numbers)
passed down as hooks.
"""

from __future__ import annotations

import sys

from theory import cli as theory_cli

from .covering import covering_number


def main(argv: list[str] | None = None) -> int:
    return theory_cli.main(argv, hooks={"covering_number": covering_number})


if __name__ == "__main__":
    sys.exit(main())
