"""The notebooks run top to bottom (their cells assert numbers against exact computations)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # a cell ending in a plot_* call shows its figure (a pyplot-free Figure needs the inline
    # formatter, which `%matplotlib inline` registers)
    for cell in notebook.cells:
        last = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
        if cell.cell_type == "code" and last.startswith("plot_"):
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), last


def test_there_are_three_notebooks():
    assert [p.stem for p in NOTEBOOKS] == ["01_quickstart", "02_paper_experiment",
                                           "03_theorem_checks"]
