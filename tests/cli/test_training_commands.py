"""The training commands are thin: each parses its flags, loads the config, calls one typed
function with them (defaults included) and prints what it returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import training.evaluate
import training.traffic.retrain
import training.train
from router.cli.main import main
from router.config import Settings

CACHE = Path(".cache/embeddings")


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, result: Any) -> dict:
    seen: dict[str, Any] = {}

    def record(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return result

    monkeypatch.setattr(module, name, record)
    return seen


def _settings(seen: dict) -> None:
    assert isinstance(seen.pop("settings"), Settings)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags name files that must exist (the CLI checks them): made here."""
    monkeypatch.chdir(tmp_path)
    Path("a.jsonl").write_text("")
    Path("d").mkdir()


def test_train_passes_every_flag_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch, training.train, "train", Path("m"))
    assert main(["train", "--traces", "a.jsonl", "--out", "m"]) == 0
    _settings(seen)
    assert seen == {"out": Path("m"), "cache_dir": CACHE, "data_dir": None,
                    "traces": [Path("a.jsonl")], "seed": 0, "strict": False, "backend": "onnx"}


def test_train_selection_groups_are_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch, training.train, "train", Path("m"))
    assert main(["train", "--traces", "a.jsonl", "--out", "m", "--selection-groups", "x/a",
                 "y"]) == 0
    assert seen["selection_groups"] == ("x/a", "y")
    assert main(["train", "--traces", "a.jsonl", "--out", "m", "--selection-groups", "all"]) == 0
    assert seen["selection_groups"] is None


def test_evaluate_passes_every_flag_and_prints_the_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _spy(monkeypatch, training.evaluate, "evaluate", {"summary": []})
    assert main(["evaluate", "--data-dir", "d", "--out", "r", "--lodo"]) == 0
    _settings(seen)
    assert seen == {"out": Path("r"), "cache_dir": CACHE, "model_dir": None,
                    "data_dir": Path("d"), "traces": [], "seed": 0, "strict": False,
                    "backend": None, "bootstrap": 200, "lodo": True}
    assert capsys.readouterr().out.endswith("wrote r/report.json\n")


def test_retrain_passes_every_flag_and_prints_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _spy(monkeypatch, training.traffic.retrain, "retrain", {})
    monkeypatch.setattr(training.traffic.retrain, "format_report", lambda report: "the report")
    assert main(["retrain", "--out", "c", "--since", "5", "--public-sources", "routerbench"]) == 0
    _settings(seen)
    assert seen == {"out": Path("c"), "cache_dir": CACHE, "data_dir": None,
                    "public_sources": ["routerbench"], "mix_public": False, "since": 5.0,
                    "seed": 0}
    assert capsys.readouterr().out == "the report\n"


def test_replay_report_prints_each_reports_tables(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from tests.training.traffic.test_replay_summary import report, three_orders

    paths = []
    for name, with_task in (("names.json", True), ("none.json", False)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(report(three_orders(), with_task)))
    assert main(["replay-report", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert out.count("| window | outcomes |") == 2
    assert "task names sent" in out and "task names withheld" in out
    assert "| frozen APGR >= prior's - 0.01 |" in out
