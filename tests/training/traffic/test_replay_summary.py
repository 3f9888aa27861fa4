"""A replay's orders reduced to figures with their spread, the targets read from them, and the
tables written from a report. The orders here are synthetic (figures made up by hand, not
measured), so this checks the arithmetic and the verdicts, not any routing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from router.errors import RouterError
from training.traffic.replay_summary import (
    format_replay,
    markdown_tables,
    prior_apgr,
    read_report,
    summarise,
    target_checks,
)

SWEEP = {"apgr": 0.5, "scores_apgr": 0.55, "savings_at_95": 0.1, "quality_vs_strongest": 1.0,
         "cost_vs_strongest": 1.0, "predicted": 0.80, "realised": 0.80, "length_apgr": 0.45,
         "length_savings_at_95": 0.05, "length_quality": 1.0, "random_quality": 1.0,
         "by_source": {}}


def window(quality: float, cost: float, outcomes: int) -> dict:
    return {"outcomes": outcomes, "quality_vs_strongest": quality, "cost_vs_strongest": cost,
            "predicted": 0.82, "realised": 0.80, "explored": 0.0,
            "share": {"medium": 0.3, "large": 0.7}}


def order(frozen_apgr: float, windows: list[tuple[float, float]], gap: float = 0.01,
          learning_quality: float = 0.96) -> dict:
    curve = [window(q, c, 250 * (i + 1)) for i, (q, c) in enumerate(windows)]
    learning = {**window(learning_quality, 0.70, 0), "length_quality": 0.93,
                "random_quality": 0.92, "by_source": {}}
    frozen = {**SWEEP, "apgr": frozen_apgr, "predicted": 0.80 + gap}
    return {"prior": dict(SWEEP), "frozen": frozen, "learning": learning, "curve": curve}


def three_orders(**kwargs: float) -> list[dict]:
    return [order(0.60, [(0.94, 0.7), (0.97, 0.6)], **kwargs),
            order(0.64, [(0.96, 0.8), (0.91, 0.7)], **kwargs),
            order(0.62, [(0.95, 0.9), (0.99, 0.8)], **kwargs)]


def test_every_figure_has_its_mean_and_its_range_over_orders() -> None:
    s = summarise(three_orders(), [])
    assert s["frozen"]["apgr"] == pytest.approx(0.62)
    assert s["ranges"]["frozen"]["apgr"] == pytest.approx([0.60, 0.64])
    assert s["frozen"]["gap"] == pytest.approx(0.01)
    first, second = s["windows"]
    assert first["orders"] == second["orders"] == 3
    assert first["mean"]["quality_vs_strongest"] == pytest.approx(0.95)
    assert first["range"]["cost_vs_strongest"] == pytest.approx([0.7, 0.9])
    assert second["range"]["quality_vs_strongest"] == pytest.approx([0.91, 0.99])
    assert s["worst_window_by_order"] == pytest.approx([0.94, 0.91, 0.95])
    assert s["worst_window_quality"] == pytest.approx(0.91)
    assert s["learning"]["random_quality"] == pytest.approx(0.92)


def test_a_short_order_counts_only_in_the_windows_it_has() -> None:
    orders = three_orders()
    orders[2]["curve"] = orders[2]["curve"][:1]
    s = summarise(orders, [])
    assert [w["orders"] for w in s["windows"]] == [3, 2]
    assert s["windows"][1]["range"]["quality_vs_strongest"] == pytest.approx([0.91, 0.97])


def test_learning_is_summarised_per_source_where_sources_are_mixed() -> None:
    orders = three_orders()
    for k, o in enumerate(orders):
        o["learning"]["by_source"] = {"a": window(0.90 + 0.02 * k, 0.5, 0),
                                      "b": window(0.99, 0.9, 0)}
    s = summarise(orders, [])
    assert s["learning_by_source"]["a"]["mean"]["quality_vs_strongest"] == pytest.approx(0.92)
    assert s["learning_by_source"]["a"]["range"]["quality_vs_strongest"] == \
        pytest.approx([0.90, 0.94])
    assert "while learning, a: 0.920" in format_replay(report(orders))


def test_the_prior_is_judged_by_the_better_of_its_service_curve_and_its_scores() -> None:
    s = summarise(three_orders(), [])
    assert prior_apgr(s) == pytest.approx(0.55)  # cold calls pin the service curve at 0.5


def verdicts(checks: list[dict]) -> dict[str, bool | None]:
    return {c["target"].split(" >=")[0].split(" <=")[0].split(" within")[0]: c["met"]
            for c in checks}


def test_targets_with_task_names_are_met_or_not_on_the_mean() -> None:
    checks = target_checks(summarise(three_orders(), []), with_task=True)
    got = verdicts(checks)
    assert got["while learning"] is True  # 0.96
    assert got["every window"] is False  # 0.91 in order 2
    assert got["frozen dry-run default"] is True  # quality 1.0 ...
    assert got["frozen dry-run default cost"] is False  # ... at always-strongest's cost
    assert got["frozen APGR"] is True  # 0.62 >= 0.55 + 0.05 (prior) and 0.45 + 0.05 (length)
    assert got["frozen dry-run default calibration"] is True  # +1 point
    assert not any(c["target"].startswith("after") for c in checks)  # no live pass recorded
    apgr = next(c for c in checks if c["target"].startswith("frozen APGR >= prior"))
    assert apgr["figure"] == "0.620 [0.600, 0.640] vs 0.550"


def test_the_live_default_after_learning_is_judged_beside_the_dry_run() -> None:
    orders = three_orders()
    for k, o in enumerate(orders):
        o["after"] = {**window(0.95 + 0.01 * k, 0.72, 0), "length_quality": 0.94,
                      "random_quality": 0.93, "by_source": {}}
    s = summarise(orders, [])
    got = verdicts(target_checks(s, with_task=True))
    assert got["after learning, live default"] is True  # 0.96 of strongest's quality ...
    assert got["after learning, live default cost"] is True  # ... at 0.72 of its cost
    assert got["after learning, live default calibration"] is True  # +2 points
    assert got["frozen dry-run default cost"] is False
    assert s["ranges"]["after"]["quality_vs_strongest"] == pytest.approx([0.95, 0.97])
    text = markdown_tables(report(orders))
    assert "| after, live | 100 scored | 0.960 [0.950–0.970] | 0.720 [0.720–0.720] |" in text
    assert "routed live (no feedback): 0.960" in format_replay(report(orders))


def test_a_miscalibrated_map_and_a_weak_ranking_miss_their_targets() -> None:
    orders = three_orders(gap=0.05)
    for o in orders:
        o["frozen"]["apgr"] = 0.58
    got = verdicts(target_checks(summarise(orders, []), with_task=True))
    assert got["frozen dry-run default calibration"] is False
    ranking = [c for c in target_checks(summarise(orders, []))
               if c["target"].startswith("frozen APGR")]
    assert [c["met"] for c in ranking] == [False, True]  # 0.58 < 0.60; 0.58 >= 0.50


def test_without_task_names_the_ranking_target_is_the_prior_less_a_point() -> None:
    orders = three_orders()
    for o in orders:
        o["frozen"]["apgr"] = 0.545
    checks = target_checks(summarise(orders, []), with_task=False)
    ranking = [c for c in checks if c["target"].startswith("frozen APGR")]
    assert len(ranking) == 1 and ranking[0]["target"] == "frozen APGR >= prior's - 0.01"
    assert ranking[0]["met"] is True  # 0.545 >= 0.55 - 0.01
    assert not any("cost" in c["target"] for c in checks)


def report(orders: list[dict], with_task: bool = True) -> dict:
    return {"source": "synthetic", "url": "test", "prior": "synthetic-prior",
            "tiers": ["medium", "large"], "learn": 500, "score": 100, "with_task": with_task,
            "orders": orders, "ceilings": [], "summary": summarise(orders, [])}


def test_the_markdown_has_every_window_the_states_and_the_targets() -> None:
    text = markdown_tables(report(three_orders()))
    assert "| 1 | 250 | 0.950 [0.940–0.960] | 0.800 [0.700–0.900] |" in text
    assert "| 2 | 500 | 0.957 [0.910–0.990] |" in text
    assert "| all | 500 | 0.960 [0.960–0.960] | 0.700 [0.700–0.700] | +0.020 [+0.020–+0.020] " \
           "| 0.930 [0.930–0.930] | 0.920 [0.920–0.920] |" in text
    assert "| all | frozen | 0.620 [0.600–0.640] |" in text
    assert "| every window >= 0.93 | **not met** | worst 0.910 (per order 0.940, 0.910, " \
           "0.950) |" in text


def test_one_order_is_shown_without_a_range() -> None:
    text = markdown_tables(report(three_orders()[:1]))
    assert "| 1 | 250 | 0.940 | 0.700 |" in text and "[" not in text.split("| target")[0]


def test_a_report_file_is_summarised_again_from_its_orders(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    old = report(three_orders())
    old["summary"] = {"orders": 3}  # written before the ranges existed
    path.write_text(json.dumps(old))
    again = read_report(path)
    assert again["summary"]["ranges"]["frozen"]["apgr"] == pytest.approx([0.60, 0.64])
    assert not math.isnan(again["summary"]["worst_window_quality"])


def test_a_file_that_is_not_a_report_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(RouterError, match="other.json is not a report"):
        read_report(path)
    path.write_text("not json")
    with pytest.raises(RouterError, match="not a report"):
        read_report(path)
