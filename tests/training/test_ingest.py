"""Tests for training.ingest: adapters on the real shared data, the trace reader on synthetic files.

The public-data tests read /work/shared/data-like folders next to the repository and skip when it
is absent. Every trace file here is synthetic, written to tmp_path by the test itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from router.errors import RouterError, TraceError
from training.adapters import (
    hash_split,
    llmrouter_model_sizes,
    llmrouter_prices,
    load_alpacaeval,
    load_llmrouter,
    normalise_prompt,
    text_id,
)
from training.ingest import OUTCOME_COLUMNS, load_public, read_traces, summarise

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"shared public data not found at {DATA_DIR}"
)

# Prompt counts from the data README (train + test files of each task).
README_ROUTERBENCH = {"arc_challenge": 1484, "mbpp": 427, "winograde": 1267}
# Rows that are not distinct prompts: RouterBench ARC stores 14 samples on two rows each
# (gpt-3.5-turbo-1106's label alone, with the prompt list doubled); each pair is one prompt.
# Two MBPP train prompts repeat test prompts verbatim and are kept only in test.
ROUTERBENCH_NOT_DISTINCT = {"arc_challenge": 14, "mbpp": 2, "winograde": 0}


@pytest.fixture(scope="module")
def public() -> pd.DataFrame:
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared public data not found at {DATA_DIR}")
    return load_public(DATA_DIR)


# Public adapters on the real data.


@needs_data
@pytest.mark.parametrize("task", sorted(README_ROUTERBENCH))
def test_routerbench_files_hold_the_readme_prompt_counts(task: str) -> None:
    rows = sum(
        len(pd.read_csv(DATA_DIR / "routerbench" / f"{task}_{split}.csv", usecols=["sample_id"]))
        for split in ("train", "test")
    )
    assert rows == README_ROUTERBENCH[task]


@needs_data
def test_routerbench_distinct_prompts_per_task(public: pd.DataFrame) -> None:
    counts = public[public["dataset"] == "routerbench"].groupby("source")["prompt_id"].nunique()
    expected = {
        f"routerbench/{'winogrande' if task == 'winograde' else task}": count
        - ROUTERBENCH_NOT_DISTINCT[task]
        for task, count in README_ROUTERBENCH.items()
    }
    assert counts.to_dict() == expected


@needs_data
def test_routerbench_doubled_arc_row_joins_its_sibling(public: pd.DataFrame) -> None:
    rows = public[public["prompt_id"] == "routerbench/arc_challenge:arc-challenge.val.174"]
    assert rows["model"].nunique() == 11
    question = "Which changes will most likely have a negative effect on an ecosystem?"
    assert rows["prompt"].iloc[0].count(question) == 1
    assert not rows["prompt"].iloc[0].startswith("['")


@needs_data
def test_public_frame_has_the_outcome_columns(public: pd.DataFrame) -> None:
    assert list(public.columns) == OUTCOME_COLUMNS
    assert set(public["dataset"]) == {
        "routerbench", "llmrouter", "openmodels7", "alpacaeval", "routerarena",
    }  # fmt: skip
    assert set(public["split"]) == {"train", "test"}
    assert public["messages"].isna().all()


@needs_data
def test_every_public_prompt_carries_its_data_sets_category_as_task(public: pd.DataFrame) -> None:
    no_cluster = (public["dataset"] == "llmrouter") & (public["split"] == "test")
    assert public.loc[~no_cluster, "task"].notna().all()  # llmrouter's test.json has no cluster_id
    assert public["task"].str.len().max() <= 64  # what /route accepts as a task
    tasks = public[~no_cluster].groupby("dataset")["task"].unique()
    assert set(tasks["routerbench"]) == {"arc-challenge", "mbpp", "winogrande"}
    assert set(tasks["llmrouter"]) == {"cluster-0", "cluster-1", "cluster-2"}
    assert "MATH_prealgebra" in set(tasks["openmodels7"])
    assert "GSM8K" in set(tasks["routerarena"]) and "MMLUPro_math" in set(tasks["routerarena"])
    assert set(tasks["alpacaeval"]) == {"helpful_base", "koala", "oasst", "selfinstruct",
                                        "vicuna"}


@needs_data
def test_every_public_quality_is_in_unit_interval(public: pd.DataFrame) -> None:
    assert public["quality"].notna().all()
    assert public["quality"].between(0.0, 1.0).all()


@needs_data
def test_no_public_prompt_is_in_both_splits(public: pd.DataFrame) -> None:
    assert (public.groupby("prompt_id")["split"].nunique() == 1).all()
    seen = public[["dataset", "prompt", "split"]].drop_duplicates()
    seen["text"] = seen["prompt"].map(normalise_prompt)
    assert (seen.groupby(["dataset", "text"])["split"].nunique() == 1).all()


@needs_data
def test_public_prompt_ids_name_one_prompt(public: pd.DataFrame) -> None:
    assert not public.duplicated(["prompt_id", "model"]).any()
    assert (public.groupby("prompt_id")["prompt"].nunique() == 1).all()
    assert (public["prompt_id"].str.split(":").str[0] == public["source"]).all()


@needs_data
def test_llmrouter_reports_cross_split_prompts_and_keeps_them_in_test(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        frame = load_llmrouter(DATA_DIR)
    assert "llmrouter: 119 prompts appear in both train and test" in caplog.text
    prompts = frame.groupby("split")["prompt_id"].nunique()
    assert prompts["test"] == 500 and prompts["train"] == 5608 - 119


@needs_data
def test_alpacaeval_uses_one_annotator_without_reference_self_rows() -> None:
    frame = load_alpacaeval(DATA_DIR)
    assert frame["prompt"].nunique() == 805
    assert "gpt4_1106_preview" not in set(frame["model"])
    assert {"claude-2", "claude-instant-1.2", "gpt-3.5-turbo-1106", "gemma-7b-it"} <= set(
        frame["model"]
    )
    assert frame["quality"].between(0.0, 1.0).all()


@needs_data
def test_alpacaeval_rejects_an_unknown_annotator() -> None:
    with pytest.raises(RouterError, match="'annotator' parameter"):
        load_alpacaeval(DATA_DIR, annotator="nobody")


@needs_data
def test_routerarena_carries_real_tokens_and_cost(public: pd.DataFrame) -> None:
    arena = public[public["dataset"] == "routerarena"]
    assert arena[["cost_usd", "tokens_in", "tokens_out"]].notna().all().all()
    assert (arena["tokens_in"] > 0).all() and (arena["cost_usd"] > 0).all()
    others = public[public["dataset"].isin(["llmrouter", "openmodels7", "alpacaeval"])]
    assert others["cost_usd"].isna().all()


@needs_data
def test_llmrouter_prices_and_sizes() -> None:
    prices, sizes = llmrouter_prices(DATA_DIR), llmrouter_model_sizes(DATA_DIR)
    assert prices["gemma-2-9b-it"] == (0.1, 0.1)
    assert sizes["llama-3.3-nemotron-super-49b-v1"] == 49.0
    assert set(prices) == set(sizes)


@needs_data
def test_load_public_filters_by_dataset() -> None:
    frame = load_public(DATA_DIR, sources=["routerarena"])
    assert set(frame["dataset"]) == {"routerarena"}
    with pytest.raises(RouterError, match="'sources' parameter"):
        load_public(DATA_DIR, sources=["routerbenhc"])


@needs_data
def test_summarise_counts_rows_prompts_and_models(public: pd.DataFrame) -> None:
    summary = summarise(public).set_index(["source", "split"])
    assert summary["rows"].sum() == len(public)
    assert summary.loc[("llmrouter", "test"), "prompts"] == 500
    assert summary.loc[("routerbench/mbpp", "train"), "models"] == 11


def test_hash_split_is_deterministic_and_about_one_in_five() -> None:
    texts = [f"prompt number {i}" for i in range(2000)]
    splits = [hash_split(text) for text in texts]
    assert splits == [hash_split(text) for text in texts]
    assert hash_split("a  b\n") == hash_split("a b")
    assert 0.17 < splits.count("test") / len(splits) < 0.23


# Trace reader on synthetic files.

GOOD = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Plan the trip."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "user", "content": "Now summarise."},
    ],
    "model": "gpt-4o-mini",
    "quality": 0.8,
    "cost_usd": 0.002,
    "tokens_in": 120,
    "tokens_out": 30,
    "task": "synthesize",
    "propensity": 0.25,
    "decision_id": "d-1",
    "run_id": "r-9",
    "timestamp": "2025-01-02T03:04:05Z",
    "some_unknown_field": {"kept": "out"},
}


def write_jsonl(tmp_path: Path, lines: list, name: str = "agent_logs.jsonl") -> Path:
    """Synthetic trace file: dicts become JSON lines, strings are written as they are."""
    path = tmp_path / name
    texts = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def test_good_trace_line_becomes_one_outcome(tmp_path: Path) -> None:
    frame, errors = read_traces(write_jsonl(tmp_path, [GOOD]), strict=True)
    assert errors == [] and list(frame.columns) == OUTCOME_COLUMNS
    row = frame.iloc[0]
    assert row["prompt"] == "Now summarise."
    assert row["messages"] == GOOD["messages"]
    assert (row["model"], row["quality"], row["cost_usd"]) == ("gpt-4o-mini", 0.8, 0.002)
    assert (row["tokens_in"], row["tokens_out"], row["propensity"]) == (120.0, 30.0, 0.25)
    assert (row["task"], row["decision_id"]) == ("synthesize", "d-1")
    assert (row["source"], row["dataset"]) == ("agent_logs", "agent_logs")
    assert row["prompt_id"].startswith("agent_logs:") and len(row["prompt_id"]) == 11 + 16
    assert row["split"] in {"train", "test"}


def test_prompt_shorthand_equals_a_single_user_message(tmp_path: Path) -> None:
    lines = [
        {"prompt": "What is 2+2?", "model": "m", "success": True, "source": "math/easy"},
        {
            "messages": [{"role": "user", "content": "What is  2+2?"}],
            "model": "m",
            "success": False,
            "source": "math/easy",
        },
    ]
    frame, _ = read_traces(write_jsonl(tmp_path, lines), strict=True)
    assert frame["prompt_id"].nunique() == 1
    assert frame["prompt_id"].iloc[0] == f"math/easy:{text_id('What is 2+2?')}"
    assert frame["quality"].tolist() == [1.0, 0.0]
    assert frame["dataset"].tolist() == ["math", "math"]
    assert frame["messages"].iloc[0] is None and frame["task"].iloc[0] is None


def test_same_prompt_in_both_splits_is_kept_only_in_test(tmp_path: Path) -> None:
    base = {"prompt": "Same prompt", "model": "m", "quality": 1.0, "source": "s"}
    lines = [{**base, "split": "train"}, {**base, "split": "test", "model": "n"}]
    frame, _ = read_traces(write_jsonl(tmp_path, lines), strict=True)
    assert frame["split"].tolist() == ["test"] and frame["model"].tolist() == ["n"]


BAD_LINES = [
    ({"model": "m", "quality": 1}, "messages"),
    ({"prompt": "p", "quality": 1}, "model"),
    ({"prompt": "p", "model": ""}, "model"),
    ({"prompt": "p", "model": "m"}, "quality"),
    ({"prompt": "p", "model": "m", "quality": 1.5}, "quality"),
    ({"prompt": "p", "model": "m", "quality": True}, "quality"),
    ({"prompt": "p", "model": "m", "success": "yes"}, "success"),
    ({"prompt": "p", "model": "m", "quality": 1, "cost_usd": -0.1}, "cost_usd"),
    ({"prompt": "p", "model": "m", "quality": 1, "tokens_in": -3}, "tokens_in"),
    ({"prompt": "p", "model": "m", "quality": 1, "tokens_out": 2.5}, "tokens_out"),
    ({"prompt": "p", "model": "m", "quality": 1, "latency_ms": -1}, "latency_ms"),
    ({"prompt": "p", "model": "m", "quality": 1, "propensity": 0}, "propensity"),
    ({"prompt": "p", "model": "m", "quality": 1, "propensity": 1.2}, "propensity"),
    ({"prompt": "p", "model": "m", "quality": 1, "split": "dev"}, "split"),
    ({"prompt": "p", "model": "m", "quality": 1, "timestamp": "yesterday"}, "timestamp"),
    ({"prompt": 42, "model": "m", "quality": 1}, "prompt"),
    ({"messages": "hello", "model": "m", "quality": 1}, "messages"),
    ({"messages": [], "model": "m", "quality": 1}, "messages"),
    ({"messages": ["hello"], "model": "m", "quality": 1}, "messages[0]"),
    ({"messages": [{"role": "robot", "content": "x"}], "model": "m", "quality": 1},
     "messages[0].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 7}],
      "model": "m", "quality": 1}, "messages[1].content"),
    ({"messages": [{"role": "user", "content": None}], "model": "m", "quality": 1},
     "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": None}], "model": "m", "quality": 1},
     "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}],
      "model": "m", "quality": 1}, "messages[0].content"),
    ("{not json", None),
    ('["a", "list"]', None),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "field"), BAD_LINES)
def test_bad_line_raises_when_strict(tmp_path: Path, bad: dict | str, field: str | None) -> None:
    path = write_jsonl(tmp_path, [GOOD, bad])
    with pytest.raises(TraceError) as caught:
        read_traces(path, strict=True)
    assert (caught.value.line, caught.value.field) == (2, field)


@pytest.mark.parametrize(("bad", "field"), BAD_LINES)
def test_bad_line_is_skipped_and_collected(tmp_path: Path, bad: dict | str, field: str | None):
    frame, errors = read_traces(write_jsonl(tmp_path, [bad, GOOD, bad]))
    assert len(frame) == 1 and frame["model"].iloc[0] == "gpt-4o-mini"
    assert [(error.line, error.field) for error in errors] == [(1, field), (3, field)]


def test_blank_lines_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [GOOD, "", {"prompt": "p", "model": "m", "quality": 2}])
    frame, errors = read_traces(path)
    assert len(frame) == 1 and [(e.line, e.field) for e in errors] == [(3, "quality")]


def test_csv_traces_number_lines_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.csv"
    pd.DataFrame(
        {
            "prompt": ["p1", "p2", "p3", "p4"],
            "model": ["m", "m", "m", "m"],
            "quality": ["1", "0.5", "", "abc"],
            "success": ["", "", "false", ""],
            "tokens_in": ["10", "", "", ""],
            "messages": ["", json.dumps([{"role": "user", "content": "p2"}]), "", ""],
            "extra": ["x", "y", "z", "w"],
        }
    ).to_csv(path, index=False)
    frame, errors = read_traces(path)
    assert frame["quality"].tolist() == [1.0, 0.5, 0.0]
    assert frame["tokens_in"].iloc[0] == 10.0 and pd.isna(frame["tokens_in"].iloc[1])
    assert frame["messages"].iloc[1] == [{"role": "user", "content": "p2"}]
    assert [(e.line, e.field) for e in errors] == [(5, "quality")]


def test_parquet_traces_read_nested_messages(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.parquet"
    pd.DataFrame(
        {
            "messages": [[{"role": "user", "content": "hi"}], None, None],
            "prompt": [None, "p2", "p3"],
            "model": ["m", "m", "m"],
            "quality": [1.0, 0.0, 0.5],
            "propensity": [0.5, None, 1.5],
        }
    ).to_parquet(path)
    frame, errors = read_traces(path)
    assert frame["messages"].iloc[0] == [{"role": "user", "content": "hi"}]
    assert frame["prompt"].tolist() == ["hi", "p2"]
    assert frame["propensity"].iloc[0] == 0.5 and pd.isna(frame["propensity"].iloc[1])
    assert [(e.line, e.field) for e in errors] == [(4, "propensity")]


def test_empty_trace_file_gives_an_empty_frame(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    frame, errors = read_traces(path, strict=True)
    assert frame.empty and list(frame.columns) == OUTCOME_COLUMNS and errors == []


def test_unsupported_trace_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "traces.txt"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(TraceError, match="trace files must be"):
        read_traces(path)
