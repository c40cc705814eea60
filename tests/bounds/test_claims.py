"""The claims package's runner: the resume store keeps data (JSON), never drawn figures, and a
resumed run draws the same figures from it without running the claim again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from safepce.bounds import claims
from safepce.bounds.claims.runner import VerifyContext, run_verify
from safepce.tabular.errors import InputError


def _sweep_claim(calls):
    def claim(context: VerifyContext):
        calls.append(1)
        sweep = [{"scale": f, "runs": 40, "violating_runs": np.int64(k), "fraction": k / 40,
                  "low": 0.0, "high": np.float64(0.1 + k / 40), "mean_regret": 100.0 / f}
                 for f, k in ((1.0, 0), (0.1, 0), (0.01, 3))]
        context.add_figure("scaled_sweep", "plot_scaled_sweep", sweep)
        return [claims.Claim("X: a check", np.bool_(True), np.int64(120), np.float64(0.01))]
    return claim


def _lines(figure):
    return [np.asarray(line.get_ydata(), dtype=float).tolist()
            for ax in figure.axes for line in ax.get_lines()]


def test_the_store_keeps_data_and_a_resumed_run_draws_the_same_figure(tmp_path):
    calls = []
    table = (claims.ClaimCheck("x", "X", _sweep_claim(calls)),)
    first, first_figures = run_verify(tmp_path, claims=table, progress=False)
    second, second_figures = run_verify(tmp_path, claims=table, progress=False)
    assert len(calls) == 1                                   # the second run read the store
    entry = json.loads((tmp_path / "store" / "x.json").read_text())
    assert set(entry) == {"version", "claims", "figures"}
    assert entry["figures"]["scaled_sweep"]["plot"] == "plot_scaled_sweep"
    assert not list((tmp_path / "store").glob("*.pkl"))
    assert [c.to_dict() for c in first] == [c.to_dict() for c in second]
    assert first[0].runs == 120 and first[0].passed is True
    assert _lines(first_figures["scaled_sweep"]) == _lines(second_figures["scaled_sweep"])
    # the figure shows the stored fractions (3/40 at f = 0.01)
    assert [0.0, 0.0, 3 / 40] in _lines(first_figures["scaled_sweep"])


def test_a_claim_adding_a_drawn_figure_or_an_unknown_plot_is_refused(tmp_path):
    from matplotlib.figure import Figure

    def drawn(context):
        context.add_figure("f", "plot_scaled_sweep", Figure())
        return [claims.Claim("X", True, 1, 0.0)]

    with pytest.raises(TypeError, match="Figure"):
        run_verify(tmp_path / "a", claims=(claims.ClaimCheck("a", "A", drawn),), progress=False)
    assert not (tmp_path / "a" / "store" / "a.json").exists()
    with pytest.raises(InputError, match="plot_nothing"):
        VerifyContext(tmp_path).add_figure("f", "plot_nothing", [])


def test_a_damaged_or_foreign_store_entry_names_the_file(tmp_path):
    table = (claims.ClaimCheck("x", "X", _sweep_claim([])),)
    store = tmp_path / "store"
    store.mkdir()
    for text in ("{not json", json.dumps({"version": 0, "claims": [], "figures": {}})):
        (store / "x.json").write_text(text)
        with pytest.raises(InputError, match=r"x\.json.*remove it"):
            run_verify(tmp_path, claims=table, progress=False)


def test_every_claim_module_is_in_the_table_and_every_row_names_a_claim_function():
    import importlib
    import pkgutil

    functions = {check.check for check in claims.CLAIMS}
    names = [check.name for check in claims.CLAIMS]
    assert len(set(names)) == len(names) == 15
    for info in pkgutil.iter_modules(claims.__path__):
        module = importlib.import_module(f"{claims.__name__}.{info.name}")
        public = {getattr(module, n) for n in dir(module) if n.startswith("claim_")
                  and getattr(getattr(module, n), "__module__", "") == module.__name__}
        assert public <= functions, f"{info.name}: a claim function not in CLAIMS"
