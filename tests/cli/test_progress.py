"""Progress bars: library loops stay silent unless a command turns bars on, and bars never change what is iterated."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from streamer import progress

pytestmark = pytest.mark.unit


def test_track_hands_back_the_iterable_itself_unless_bars_are_on() -> None:
    items = [1, 2, 3]
    progress.enable_bars(False)
    assert progress.track(items, desc="x") is items


def test_a_bar_draws_on_a_terminal_and_yields_the_same_items(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    progress.enable_bars(True)
    try:
        assert list(progress.track(iter(range(5)), desc="import wfdb", total=5)) == [0, 1, 2, 3, 4]
    finally:
        progress.enable_bars(False)
    assert "import wfdb:" in err.getvalue() and "/5 [" in err.getvalue()  # redraws are throttled: 0/5 at least


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    code = (
        "from streamer import progress\n"
        "progress.enable_bars(True)\n"
        "assert list(progress.track(range(3), desc='golden')) == [0, 1, 2]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr == ""
