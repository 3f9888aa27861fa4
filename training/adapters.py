"""Adapters that turn each public labelled data set into outcome rows (one per prompt x model).

Every adapter takes the data folder as an argument (there is no default path) and returns a frame
with exactly `OUTCOME_COLUMNS`. Rows without a usable label are dropped and counted in the log,
never repaired. Each row's `task` is the category its data set gives it (RouterBench's
eval_name, an openmodels7 file name, LLMRouter's cluster_id, RouterArena's benchmark, AlpacaEval's
subset), as an agent's step would name itself: the replay sends it as the call's `task`.

AlpacaEval annotator. The parquet holds two annotators. `weighted_alpaca_eval_gpt4_turbo`
(AlpacaEval 2, reference gpt4_1106_preview): 46,680 rows, 58 models, 0 missing preferences.
`alpaca_eval_gpt4` (AlpacaEval 1, reference text_davinci_003): 42,665 rows, 53 models,
61 missing preferences and 188 draws coded as preference 0. Of the model classes a tier needs,
gpt4_turbo has claude-2 / claude-2.1 / claude (large), claude-instant-1.2, gpt-3.5-turbo-1106,
Mixtral-8x7B (only its `_concise` run) and small models (gemma-2b/7b-it, vicuna-7b, alpaca-7b,
OpenHermes-2.5-Mistral-7B, FuseChat 1B-9B); it lacks Yi-34B, and gpt4_1106_preview appears only
as the reference judged against itself (805 rows, all preference 1.5, dropped here).
alpaca_eval_gpt4 has gpt4_1106_preview, claude-2, gpt-3.5-turbo-1106, Yi-34B and 7B models but no
claude-instant, claude-2.1, Mixtral or gemma. Both cover five of the seven named classes, so the
tie is broken by label contrast: against text-davinci-003, 79% of answers score >= 0.5 and the
tiers blur (zephyr-7b 0.906, claude-2 0.914, gpt-3.5-turbo-1106 0.863), while against
gpt4_1106_preview 14% do and the mean scores follow the classes (claude-2 0.172,
claude-instant-1.2 0.161, gpt-3.5-turbo-1106 0.092, gemma-7b 0.069, gemma-2b 0.034). Hence the
default `weighted_alpaca_eval_gpt4_turbo`; pass `annotator=` to use the other. Beware that the
judge favours long answers: FuseChat-Llama-3.2-1B scores 0.299 and the adversarial `NullModel`
0.769 under it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.errors import RouterError

logger = logging.getLogger(__name__)

OUTCOME_COLUMNS = [
    "prompt_id",
    "prompt",
    "messages",
    "model",
    "quality",
    "cost_usd",
    "tokens_in",
    "tokens_out",
    "source",
    "dataset",
    "split",
    "task",
    "propensity",
    "decision_id",
]
_FLOAT_COLUMNS = frozenset({"quality", "cost_usd", "tokens_in", "tokens_out", "propensity"})
_OPTIONAL_COLUMNS = frozenset({"messages", "task", "decision_id"})
TEST_MODULUS = 5  # one prompt in five goes to test where a file has no split of its own

ALPACAEVAL_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
_ROUTERBENCH_TASKS = {"winograde": "winogrande"}  # the file names misspell it
_SPLIT_SUFFIX = re.compile(r"(?P<task>.+?)(?:[_-](?P<split>train|test))?")


def normalise_prompt(text: str) -> str:
    """The form ids, splits and duplicate checks compare, so spacing noise never splits a prompt."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def _sha1(text: str) -> str:
    return hashlib.sha1(normalise_prompt(text).encode("utf-8")).hexdigest()


def text_id(text: str) -> str:
    """Stable 16-hex id of a normalised text, for a prompt that has no id in its file.

    Not `router.traces.rows.prompt_hash`: that one hashes a conversation exactly as sent, so
    the store can join outcomes without keeping the text; this one must ignore spacing noise.
    """
    return _sha1(text)[:16]


def hash_split(text: str) -> str:
    """Deterministic split for files without one: the same prompt always lands on the same side."""
    return "test" if int(_sha1(text), 16) % TEST_MODULUS == 0 else "train"


def outcome_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give rows from any source the shared columns, order and dtypes, so frames concatenate."""
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for column in OUTCOME_COLUMNS:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        if column in _FLOAT_COLUMNS:
            out[column] = pd.to_numeric(values).astype(float)
        elif column in _OPTIONAL_COLUMNS:
            values = values.astype(object)
            out[column] = values.where(values.notna(), None)
        else:
            out[column] = values.astype(str)
    return out


def drop_rows(frame: pd.DataFrame, mask: pd.Series, what: str) -> pd.DataFrame:
    """Drop the rows `mask` marks and log how many, so no label disappears unseen."""
    count = int(mask.sum())
    if count:
        logger.info("dropped %d %s", count, what)
    return frame[~mask]


def drop_cross_split_duplicates(
    frame: pd.DataFrame, keys: pd.Series | None = None
) -> pd.DataFrame:
    """Keep a prompt found in both splits of a dataset only in test, so test never leaks."""
    if keys is None:
        keys = frame["prompt"].map(_normalised_lookup(frame["prompt"]))
    pairs = frame["dataset"] + "\x00" + keys
    test_pairs = set(pairs[frame["split"] == "test"])
    leaked = (frame["split"] == "train") & pairs.isin(test_pairs)
    for dataset, count in pairs[leaked].groupby(frame["dataset"][leaked]).nunique().items():
        logger.warning(
            "%s: %d prompts appear in both train and test; kept only in test", dataset, count
        )
    return drop_rows(frame, leaked, "train rows whose prompt is also in test")


def _normalised_lookup(prompts: pd.Series) -> dict[str, str]:
    return {text: normalise_prompt(text) for text in prompts.unique()}


def _public_frame(frames: Iterable[pd.DataFrame], name: str) -> pd.DataFrame:
    """Concatenate one dataset's files; drop cross-split leaks first, then repeated outcomes."""
    frame = drop_cross_split_duplicates(pd.concat(list(frames), ignore_index=True))
    repeated = frame.duplicated(["prompt_id", "model"])
    frame = drop_rows(frame, repeated, f"{name} outcomes repeating a (prompt, model) pair")
    return outcome_frame(frame)


def _split_stem(stem: str) -> tuple[str, str | None]:
    match = _SPLIT_SUFFIX.fullmatch(stem)
    assert match is not None  # the pattern matches any non-empty stem
    return match["task"], match["split"]


def _routerbench_prompt(cell: str) -> str:
    """Join the parts of RouterBench's list-literal prompt.

    A few ARC rows hold one model's answer with the prompt list doubled ([x, x]) while a sibling
    row with the same sample_id holds the other models with [x]; keeping one copy of identical
    parts lets the two rows meet under one prompt.
    """
    parts = ast.literal_eval(cell)
    if len(set(parts)) == 1:
        parts = parts[:1]
    return "\n\n".join(parts)


def read_routerbench_file(path: Path) -> pd.DataFrame:
    """One RouterBench CSV as outcome rows; the split comes from the file name."""
    raw = pd.read_csv(path, usecols=lambda column: not column.endswith("|model_response"))
    task, split = _split_stem(path.stem)
    source = f"routerbench/{_ROUTERBENCH_TASKS.get(task, task)}"
    models = [column for column in raw.columns if f"{column}|total_cost" in raw.columns]
    prompt_ids = source + ":" + raw["sample_id"].astype(str)
    prompts = raw["prompt"].map(_routerbench_prompt)
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "prompt_id": prompt_ids,
                    "prompt": prompts,
                    "model": model,
                    "quality": raw[model],
                    "cost_usd": raw[f"{model}|total_cost"],
                    "task": raw["eval_name"].astype(str),
                }
            )
            for model in models
        ],
        ignore_index=True,
    )
    long = long.assign(
        source=source, dataset="routerbench", split=split or long["prompt"].map(hash_split)
    )
    return drop_rows(long, long["quality"].isna(), f"{path.name} cells with no correctness label")


def load_routerbench(data_dir: str | Path) -> pd.DataFrame:
    """RouterBench: 11 priced models, 0/1 correctness and the real cost of each call."""
    paths = sorted((Path(data_dir) / "routerbench").glob("*.csv"))
    return _public_frame((read_routerbench_file(path) for path in paths), "routerbench")


def _scores_rows(path: Path, source: str, split: str | None, task: str | None = None
                 ) -> Iterator[dict]:
    """Rows of a `[{"question", "scores": {model: score}}]` file (LLMRouter, RouterDC); the
    task is `task`, else the record's ``cluster_id`` (LLMRouter's only task signal)."""
    dataset = source.split("/")[0]
    for record in json.loads(path.read_text(encoding="utf-8")):
        question = record["question"]
        cluster = record.get("cluster_id")
        row_task = task or (f"cluster-{cluster}" if cluster is not None else None)
        prompt_id = f"{source}:{text_id(question)}"
        row_split = split or hash_split(question)
        for model, score in record["scores"].items():
            yield {
                "prompt_id": prompt_id,
                "prompt": question,
                "model": model,
                "quality": score,
                "source": source,
                "dataset": dataset,
                "split": row_split,
                "task": row_task,
            }


def load_llmrouter(data_dir: str | Path) -> pd.DataFrame:
    """LLMRouter: 9 NIM models on 14 tasks; no per-call cost (see `llmrouter_prices`)."""
    folder = Path(data_dir) / "llmrouter"
    frames = (
        pd.DataFrame(_scores_rows(folder / f"{split}.json", "llmrouter", split))
        for split in ("train", "test")
    )
    return _public_frame(frames, "llmrouter")


def _llmrouter_candidates(data_dir: str | Path) -> dict[str, dict]:
    path = Path(data_dir) / "llmrouter" / "llm_candidates.json"
    return json.loads(path.read_text(encoding="utf-8"))


def llmrouter_prices(data_dir: str | Path) -> dict[str, tuple[float, float]]:
    """USD per million (input, output) tokens per LLMRouter model, to estimate per-call cost."""
    candidates = _llmrouter_candidates(data_dir)
    return {
        model: (float(entry["input_price"]), float(entry["output_price"]))
        for model, entry in candidates.items()
    }


def llmrouter_model_sizes(data_dir: str | Path) -> dict[str, float]:
    """Parameters in billions per LLMRouter model ("49B" -> 49.0), to map models to tiers."""
    candidates = _llmrouter_candidates(data_dir)
    return {model: float(entry["size"].rstrip("Bb")) for model, entry in candidates.items()}


def load_openmodels7(data_dir: str | Path) -> pd.DataFrame:
    """Seven 7-8B models on 11 task files: difficulty for small models, no tier contrast."""
    frames = []
    for path in sorted((Path(data_dir) / "openmodels7").glob("*.json")):
        task, split = _split_stem(path.stem)
        frames.append(pd.DataFrame(_scores_rows(path, f"openmodels7/{task}", split, task)))
    return _public_frame(frames, "openmodels7")


def load_alpacaeval(
    data_dir: str | Path, annotator: str = ALPACAEVAL_ANNOTATOR
) -> pd.DataFrame:
    """AlpacaEval chat instructions; quality = P(answer at least as good as the reference)."""
    path = Path(data_dir) / "alpacaeval" / "alpacaeval_preferences_long.parquet"
    columns = ["annotator", "model", "generator_1", "instruction", "preference", "dataset"]
    raw = pd.read_parquet(path, columns=columns)
    if annotator not in set(raw["annotator"]):
        known = sorted(set(raw["annotator"]))
        raise RouterError(
            f"The 'annotator' parameter must be one of {known}. Got {annotator!r} instead."
        )
    raw = raw[raw["annotator"] == annotator]
    raw = drop_rows(raw, raw["preference"].isna(), "alpacaeval rows with no preference")
    raw = drop_rows(
        raw, raw["model"] == raw["generator_1"], "alpacaeval rows judging the reference itself"
    )
    draws = raw["preference"] == 0  # AlpacaEval 1 codes a draw as 0, i.e. 1.5
    if draws.any():
        logger.info("read %d alpacaeval draws coded 0 as preference 1.5", int(draws.sum()))
    instructions = raw["instruction"].unique()
    ids = {text: f"alpacaeval:{text_id(text)}" for text in instructions}
    splits = {text: hash_split(text) for text in instructions}
    frame = pd.DataFrame(
        {
            "prompt_id": raw["instruction"].map(ids),
            "prompt": raw["instruction"],
            "model": raw["model"],
            "quality": raw["preference"].where(~draws, 1.5) - 1.0,
            "source": "alpacaeval",
            "dataset": "alpacaeval",
            "split": raw["instruction"].map(splits),
            "task": raw["dataset"].astype(str),
        }
    )
    return _public_frame([frame], "alpacaeval")


def _routerarena_row(record: dict) -> dict:
    """One RouterArena call; score and cost sit in `evaluation_result`, absent if unscored."""
    evaluation = record.get("evaluation_result") or {}
    usage = record.get("token_usage") or {}
    question = record["question"]
    return {
        "prompt_id": f"routerarena:{record['global_index']}",
        "prompt": question,
        "model": record["llm_selected"],
        "quality": evaluation.get("score", np.nan),
        "cost_usd": evaluation.get("inference_cost", np.nan),
        "tokens_in": usage.get("input_tokens", np.nan),
        "tokens_out": usage.get("output_tokens", np.nan),
        "source": "routerarena",
        "dataset": "routerarena",
        "split": hash_split(question),
        "task": str(record["global_index"]).rsplit("_", 1)[0][:64],
    }


def load_routerarena(data_dir: str | Path) -> pd.DataFrame:
    """RouterArena cached calls: real token usage and cost per call for four models."""
    rows: list[dict[str, Any]] = []
    for path in sorted((Path(data_dir) / "routerarena" / "cached_results").glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            rows.extend(_routerarena_row(json.loads(line)) for line in lines if line.strip())
    frame = pd.DataFrame(rows)
    frame = drop_rows(frame, frame["quality"].isna(), "routerarena calls with no score")
    outside = ~frame["quality"].between(0.0, 1.0)
    frame = drop_rows(frame, outside, "routerarena calls with a score outside [0, 1]")
    return _public_frame([frame], "routerarena")
