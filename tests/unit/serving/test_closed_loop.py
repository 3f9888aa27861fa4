"""The closed loop's background steps: a fault in one is logged and the loop goes on."""

from __future__ import annotations

import logging

import pytest

from router.serving.closed_loop import guarded


def test_a_failing_background_step_is_logged_and_does_not_end_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise ValueError("a fit went wrong")

    with caplog.at_level(logging.ERROR, logger="router.serving.closed_loop"):
        guarded("learned map rebuild", broken)
        guarded("run expiry", lambda: ran.append("next"))
    assert ran == ["broken", "next"]
    [record] = caplog.records
    assert record.step == "learned map rebuild" and record.exc_info is not None  # type: ignore[attr-defined]
    assert "a fit went wrong" in caplog.text
