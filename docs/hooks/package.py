"""MkDocs hook: the API reference reads ``safepce`` from a staged copy of the sources.

The wheel installs the repository's ``tabular/``, ``theory/`` and ``bounds/`` as
``safepce.tabular``, ``safepce.theory`` and ``safepce.bounds`` (a package-dir mapping), which a
static reader of the source tree (griffe, behind mkdocstrings) cannot follow. Before the build,
``build/docs-package/safepce/`` is made afresh from ``safepce/``'s files and the three folders,
and mkdocstrings reads the package there (``paths`` in mkdocs.yml).
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGING = ROOT / "build" / "docs-package" / "safepce"
SUBPACKAGES = ("tabular", "theory", "bounds")
MARKER = ".staged-by-safepce-docs"


def on_startup(command, dirty, **kwargs):
    """Stage the package before any plugin reads the configuration (mkdocstrings drops a
    search path that does not exist yet)."""
    if STAGING.exists():
        if not (STAGING / MARKER).exists():    # never remove a folder this hook did not write
            raise SystemExit(f"{STAGING} exists and was not staged by docs/hooks/package.py; "
                             "move it away to build the documentation")
        shutil.rmtree(STAGING)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "safepce", STAGING, ignore=ignore)
    for name in SUBPACKAGES:
        shutil.copytree(ROOT / name, STAGING / name, ignore=ignore)
    (STAGING / MARKER).write_text("staged by docs/hooks/package.py; removed at the next build\n")
