"""The documentation: the MkDocs site builds with --strict (a broken reference fails), the
docstrings' Examples run as doctests, the README's example prints what its comment says, and
the tables of docs/concepts.md are the registries' own entries."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: modules whose docstrings carry runnable Examples
DOCTEST_MODULES = ("safepce", "safepce.tabular.solve", "safepce.tabular.evaluate",
                   "safepce.tabular.simulate", "safepce.tabular.distance",
                   "safepce.tabular.registry", "safepce.theory.training",
                   "safepce.theory.harness", "safepce.theory.algorithms.registry",
                   "safepce.bounds.covering")


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_with_the_api_reference_and_the_tutorials(tmp_path):
    built = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("run_test_phase", "FamilySpec", "covering_number", "VerifyContext"):
        assert name in api, name
    assert "&gt;&gt;&gt;" in api                             # the Examples are rendered
    for notebook in ("01_quickstart", "02_paper_experiment", "03_theorem_checks"):
        assert (tmp_path / "site" / "tutorials" / notebook / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    """The same configuration on a copy of the pages with one link to a missing page: the
    build fails and names it (strict mode is on, not just requested by the test above)."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, symlinks=False)
    (docs / "index.md").write_text((docs / "index.md").read_text()
                                   + "\nSee [the missing page](no-such-page.md).\n")
    config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    config = config.replace("  - docs/hooks/package.py", f"  - {ROOT / 'docs/hooks/package.py'}")
    config = config.replace("paths: [build/docs-package]",
                            f"paths: [{ROOT / 'build' / 'docs-package'}]")
    (tmp_path / "mkdocs.yml").write_text(config)
    built = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "no-such-page.md" in built.stdout + built.stderr


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name}: no Examples"
    output = io.StringIO()
    for test in tests:
        runner.run(test, out=output.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, output.getvalue()[-3000:]


def test_the_readme_is_short_and_its_links_and_example_hold(capsys):
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 150
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)\)", text):
        assert (ROOT / target).exists(), target
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"print\(.*\)\s+#\s*(.+)", code).group(1).split()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().split() == expected


def _table(page: str, header: str) -> list[list[str]]:
    text = (ROOT / "docs" / page).read_text()
    block = text[text.index(header):].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in block]


def test_the_concepts_tables_are_the_registries():
    from safepce.tabular import registry
    from safepce.theory.algorithms.registry import REGISTRY

    rows = _table("concepts.md", "| family | gamma |")
    assert [r[0] for r in rows] == list(registry.FAMILIES)
    for name, gamma, oracle, safe, horizon, description in rows:
        spec = registry.FAMILIES[name]
        assert gamma == str(spec.defaults().get("gamma", "from the file")), name
        assert oracle == f"{spec.oracle}, {spec.radius:g}", name
        assert safe.split()[0] == spec.safe_oracle and horizon == str(spec.horizon), name
        assert description == spec.description, name
    rows = _table("concepts.md", "| key | class | preset | figures |")
    assert [r[0] for r in rows] == list(REGISTRY)
    for key, cls, preset, figures in rows:
        spec = REGISTRY[key]
        assert (cls, preset) == (spec.cls.__name__, spec.preset.name), key
        assert figures == (", ".join(spec.figures) or "figure2_other"), key
