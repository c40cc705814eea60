"""The library logs what it adjusts on its own (issue 27, item 7), and --verbose shows it."""

import logging

import numpy as np

from safepce import tabular
from safepce.bounds.cli import commands, main
from safepce.tabular.families import sparse_gridworld


def test_the_lu_fallback_is_logged(caplog):
    """A slow-mixing 47 x 47 grid (policy: always up): GMRES does not certify the solve, sparse
    LU takes over, and an INFO record says so."""
    task = sparse_gridworld(0.1, 47)
    policy = np.zeros((task.n_states, 4))
    policy[:, 1] = 1.0
    with caplog.at_level(logging.INFO, logger="safepce"):
        tabular.evaluate(task, policy)
    assert any("GMRES did not certify" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)


def test_verbose_prints_the_librarys_records(tmp_path, capsys, monkeypatch):
    real = commands.plot_figure1

    def logging_plot(policies):
        logging.getLogger("safepce.tabular.solve").info("a marker record")
        return real(policies)

    monkeypatch.setattr(commands, "plot_figure1", logging_plot)
    assert main(["figure1", "--noise", "0.2", "--out", str(tmp_path / "a"), "--verbose"]) == 0
    assert "safepce: safepce.tabular.solve: a marker record" in capsys.readouterr().err
    logging.getLogger("safepce").setLevel(logging.WARNING)
    assert main(["figure1", "--noise", "0.2", "--out", str(tmp_path / "b")]) == 0
    assert "a marker record" not in capsys.readouterr().err
