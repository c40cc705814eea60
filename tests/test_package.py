"""The one import namespace ``safepce``: the folders tabular/, theory/ and bounds/ install as
safepce.tabular, safepce.theory and safepce.bounds, and nothing installs or imports a top-level
``tabular``, ``theory`` or ``bounds`` (PyPI has packages of two of those names)."""

from __future__ import annotations

import ast
import email
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("tabular", "theory", "bounds")
SOURCES = ("safepce", *FOLDERS, "tests", "benchmarks", "notebooks")


def imported_roots(source: str) -> set[str]:
    """The top-level module names a piece of Python source imports (absolute imports only)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_sources():
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, path.read_text()
        for path in sorted((ROOT / folder).rglob("*.ipynb")):
            cells = json.loads(path.read_text())["cells"]
            for cell in cells:
                if cell["cell_type"] == "code":
                    # IPython magics (%matplotlib inline) are not Python: commented out
                    lines = "".join(cell["source"]).splitlines()
                    yield path, "\n".join("#" + line if line.lstrip().startswith(("%", "!"))
                                          else line for line in lines)
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        blocks = path.read_text().split("```python")[1:]
        for block in blocks:
            yield path, block.split("```", 1)[0]


def test_no_source_imports_a_top_level_tabular_theory_or_bounds():
    # from the repository's root a stray `import tabular` would still work (the root is on
    # sys.path) and load a second copy of every module; only a scan of the sources sees it
    offending = sorted({(str(path.relative_to(ROOT)), name) for path, source in python_sources()
                        for name in imported_roots(source) & set(FOLDERS)})
    assert offending == []


def test_the_scan_sees_every_form_of_import():
    source = "import tabular\nimport theory.x as y\nfrom bounds.cli import main\nfrom . import z\n"
    assert imported_roots(source) == {"tabular", "theory", "bounds"}


def run_outside(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose working directory is not the repository."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_installed_namespace_outside_the_repository(tmp_path):
    code = """
import importlib, pkgutil, sys
import safepce
assert not any(name.startswith("safepce.") for name in sys.modules), "import safepce is eager"
for name in safepce.SUBPACKAGES:
    module = getattr(safepce, name)
    assert module.__name__ == "safepce." + name
    for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
stray = sorted(m for m in sys.modules if m.split(".")[0] in ("tabular", "theory", "bounds"))
assert stray == [], stray
for name, package in safepce.ENTRY_POINTS.items():
    assert getattr(safepce, name) is getattr(getattr(safepce, package), name), name
for name in ("tabular", "theory", "bounds"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise AssertionError(name + " is importable as a top-level package")
print("ok")
"""
    result = run_outside(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unknown_attribute_is_an_attribute_error():
    import safepce
    with pytest.raises(AttributeError, match="no attribute 'tabulr'"):
        safepce.tabulr  # noqa: B018


def test_python_dash_m_safepce_is_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "safepce", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from importlib import metadata
    assert metadata.version("safepce") in result.stdout


def expected_packages() -> set[str]:
    """Every folder holding an __init__.py, named as the wheel must install it (an independent
    walk of the file system, not setup.py's find_packages)."""
    names = {"safepce"}
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            names.add(".".join(("safepce", *parts)))
    return names


BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "safepce", *FOLDERS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a fresh copy of exactly what a build reads: an in-tree build would reuse a
    # stale build/ folder and hide a package the current setup.py no longer lists
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("safepce-*.whl")
    return path


def test_wheel_installs_only_the_safepce_namespace(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"safepce"}
    packages = {str(Path(name).parent).replace("/", ".") for name in names
                if name.endswith("/__init__.py")}
    assert packages == expected_packages()
    # every module of the source folders is in the wheel under its new name
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            assert "safepce/" + str(path.relative_to(ROOT)) in names, path


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        meta = email.message_from_string(archive.read(info).decode())
        entry = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(entry).decode()
        licence = next(name for name in names if name.endswith("licenses/LICENSE"))
        licence_text = archive.read(licence).decode()
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert licence_text.startswith("BSD 3-Clause License")
    assert meta["Requires-Python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier")
    assert any(url.startswith("Paper, https://arxiv.org/abs/2601.21845")
               for url in meta.get_all("Project-URL"))
    assert "safepce = safepce.console:run" in entry_points
    gym_extra = [req for req in meta.get_all("Requires-Dist") if "extra == \"gym\"" in req]
    assert gym_extra and all("gymnasium>=1.0" in req for req in gym_extra)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_outside_the_repository(wheel, tmp_path):
    """The issue's acceptance line, as a user runs it (slow: installs numba and friends)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=1800, cwd=tmp_path)
    ok = subprocess.run([str(python), "-c", "import safepce; safepce.tabular; safepce.theory; "
                         "safepce.bounds"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr
    clash = subprocess.run([str(python), "-c", "import tabular"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert clash.returncode != 0 and "No module named 'tabular'" in clash.stderr
    # the wheel's reproduce writes the same table as the source tree's (runs.csv is
    # byte-identical across installs, reruns and worker counts)
    command = ["reproduce", "--episodes", "2000", "--tasks", "2", "--algorithms", "safe-pce",
               "dope", "--quiet", "--out"]
    for where, exe in (("wheel", venv / "bin" / "safepce"),
                       ("source", Path(sys.executable).with_name("safepce"))):
        done = subprocess.run([str(exe), *command, str(tmp_path / where)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "wheel" / "runs.csv").read_bytes() == \
        (tmp_path / "source" / "runs.csv").read_bytes()


def _module_graph() -> dict[str, set[str]]:
    """safepce's modules and the safepce modules each imports when it is itself imported
    (module-level statements, including those under if/try; imports inside functions run
    later and are not edges). ``from . import x`` is an edge to the submodule x."""
    import ast

    mapping = {"safepce": "safepce", **{folder: f"safepce.{folder}" for folder in FOLDERS}}
    modules = {}
    for folder, package in mapping.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts
                     if p != "__init__"]
            modules[".".join([package, *parts])] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for statement in ast.parse(path.read_text()).body:
            nodes = ast.walk(statement) if isinstance(statement, (ast.If, ast.Try)) \
                else [statement]
            for node in nodes:
                if isinstance(node, ast.Import):
                    graph[name] |= {a.name for a in node.names if a.name in modules}
                elif isinstance(node, ast.ImportFrom):
                    target = node.module
                    if node.level:
                        base = name.split(".") if is_package else name.split(".")[:-1]
                        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                        target = ".".join(base + ([node.module] if node.module else []))
                    subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
                    graph[name] |= subs
                    if target in modules and len(subs) < len(node.names):
                        graph[name].add(target)
    return graph


def test_the_import_graph_has_no_circle():
    """No chain of module-level imports leads from a safepce module back to itself (the family
    registry no longer sits between distributions and families; registrations are by name)."""
    graph = _module_graph()
    assert len(graph) > 60
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_every_family_is_made_without_importing_its_package_first(tmp_path):
    """make("hard") (defined in safepce.bounds) works in a fresh interpreter that imported only
    the registry; before, it needed `import safepce.bounds` first."""
    out = subprocess.run([sys.executable, "-c",
                          "from safepce.tabular.registry import make, FAMILIES\n"
                          "print(type(make('hard', m=1)).__name__, 'hard' in FAMILIES)"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["FiniteUniform", "True"]
