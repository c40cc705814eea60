"""Progress lines refresh themselves during long steps (no silence over a second)."""

import io
import time

from tqdm import tqdm

from safepce.theory import progress


def test_keep_alive_refreshes_a_bar_during_a_long_step(monkeypatch):
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.1)
    sink = io.StringIO()
    bar = tqdm(total=2, file=sink, mininterval=0, desc="long steps")
    with progress.keep_alive(bar):
        written = len(sink.getvalue())
        time.sleep(0.65)                         # one step of a slow loop, no update
        refreshed = sink.getvalue()[written:].count("\r")
    bar.close()
    assert refreshed >= 4, refreshed


def test_status_shows_its_elapsed_time_and_closes(monkeypatch, capsys):
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.1)
    with progress.status("solving"):
        time.sleep(1.15)
    err = capsys.readouterr().err
    assert "solving: 00:00" in err and "solving: 00:01" in err
    with progress.status("quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""
