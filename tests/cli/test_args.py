"""The CLI's argument types: dates in ISO 8601 or epoch seconds, bounded numbers, paths."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from router.cli.args import integer, out_file, when


@pytest.mark.parametrize(("text", "expected"), [
    ("1793491200", datetime(2026, 11, 1, tzinfo=UTC)),
    ("1793491200.5", datetime(2026, 11, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),               # a date is midnight UTC
    ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),  # naive is UTC
    ("2026-11-01T09:30:00Z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ("2026-11-01T11:30:00+02:00", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ("2026-11-01 09:30:00z", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
])
def test_when_reads_iso_8601_and_epoch_seconds(text: str, expected: datetime) -> None:
    assert when(text) == expected.timestamp()


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "01/11/2026", ""])
def test_when_refuses_anything_else_and_says_what_it_takes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601 .* or epoch seconds"):
        when(text)


def test_integer_bounds() -> None:
    port = integer(1, 65535)
    assert port("8000") == 8000
    for bad, message in (("0", r"\[1, 65535\]"), ("65536", r"\[1, 65535\]"),
                         ("8e3", "whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            port(bad)
    assert integer(0)("0") == 0


def test_out_file_accepts_a_new_file_in_a_new_folder(tmp_path) -> None:
    path = out_file((".jsonl",))(str(tmp_path / "new" / "deeper" / "x.jsonl"))
    assert path.name == "x.jsonl"
    assert not (tmp_path / "new").exists()  # checking writes nothing
