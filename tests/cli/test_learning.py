"""`tier-router learning` on a store the service wrote: the map it would serve, and a reset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli.main import main


def test_learning_prints_the_map_and_resets_it(
    greeted: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = greeted
    assert main(["learning", "--config", str(path)]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["revision"] == 3
    assert {e["category"] for e in state["top"]} >= {"-", "-/task:greet"}
    assert main(["learning", "--reset", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("learning state reset at ")
    assert json.loads(out.split("\n", 1)[1])["revision"] == 0
