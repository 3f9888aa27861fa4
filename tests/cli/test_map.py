"""`tier-router map` on a store the service wrote: the map as a table, filtered, as JSON, and
a mistake said in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli.main import main


def test_map_prints_each_category_and_refuses_an_unknown_tier(
    greeted: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = greeted
    assert main(["map", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("learned map: ") and "3 outcomes learned" in out
    greet = next(line for line in out.splitlines() if line.startswith("-/task:greet "))
    assert " cold " in greet or " prior " in greet  # 3 outcomes: below min_outcomes
    assert main(["map", "--config", str(path), "--task", "greet", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [r["category"] for r in body["categories"]] == ["-/task:greet"]
    assert sum(t["calls"] for t in body["categories"][0]["tiers"]) == 3
    assert main(["map", "--config", str(path), "--tier", "huge"]) == 1
    assert "--tier 'huge' is not one of the tiers" in capsys.readouterr().err
