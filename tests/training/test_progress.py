"""training/progress.py: a bar only on a terminal, else log lines with an ETA (clock injected)."""

from __future__ import annotations

import io
import logging

import pytest

from training.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_ten_log_lines_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock, stream = Clock(), io.StringIO()
    caplog.set_level(logging.INFO, logger="training.progress")
    with Progress(1000, "embedding", unit="text", stream=stream, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.5
            bar.update(10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10
    assert lines[0] == "embedding: 100/1000 texts (10%), 20.0/s, 5s elapsed, ETA 45s"
    assert lines[-1] == "embedding: 1000/1000 texts (100%), 20.0/s, 50s elapsed, done"
    assert stream.getvalue() == ""  # no bar drawn into a log file


def test_on_a_terminal_a_bar_and_no_log_lines(caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the CLI sets it when not on a terminal
    stream = Terminal()
    caplog.set_level(logging.INFO, logger="training.progress")
    with Progress(20, "fits", unit="fit", stream=stream) as bar:
        bar.update(20)
    assert "20/20" in stream.getvalue()
    assert caplog.records == []


def test_a_big_step_logs_once_and_minutes_read_as_such(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    caplog.set_level(logging.INFO, logger="training.progress")
    bar = Progress(100, "x", stream=io.StringIO(), clock=clock)
    clock.now = 90.0
    bar.update(35)  # crosses three tenths: one line, not three
    assert [r.getMessage() for r in caplog.records] == [
        "x: 35/100 items (35%), 23.3/min, 1m30s elapsed, ETA 2m47s"]  # slow: per minute
