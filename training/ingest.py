"""The data step: labelled outcomes from public data sets and user traces, in one long frame.

One row per (prompt, model) outcome with exactly `OUTCOME_COLUMNS`, so the trainer never needs to
know where a label came from. `load_outcomes` is the entry of a run: public data goes through
`training.adapters`, user traces in the TRACES.md format through `read_traces`, which validates
every record and reports a bad one with its line number and field instead of mangling it, and
every input file is recorded with its sha256 for the model card.

Line numbers are 1-based. For JSONL they are physical lines (blank lines count but are not
records). For CSV and Parquet they are the data row number + 1 for the header, so the first
record is line 2, as a spreadsheet shows it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router.decision.artifact import sha256_of
from router.errors import RouterError, TraceError
from training.adapters import (
    OUTCOME_COLUMNS,
    drop_cross_split_duplicates,
    hash_split,
    load_alpacaeval,
    load_llmrouter,
    load_openmodels7,
    load_routerarena,
    load_routerbench,
    normalise_prompt,
    outcome_frame,
    text_id,
)

__all__ = [
    "OUTCOME_COLUMNS", "PUBLIC_LOADERS", "last_user_text", "load_outcomes", "load_public",
    "read_traces", "summarise",
]

logger = logging.getLogger(__name__)

PUBLIC_LOADERS: dict[str, Callable[[str | Path], pd.DataFrame]] = {
    "routerbench": load_routerbench,
    "llmrouter": load_llmrouter,
    "openmodels7": load_openmodels7,
    "alpacaeval": load_alpacaeval,
    "routerarena": load_routerarena,
}

_ROLES = ("system", "user", "assistant", "tool")
_STRING_FIELDS = (
    "prompt_id", "model", "tier", "task", "run_id", "role", "step", "user", "decision_id",
    "source", "timestamp",
)  # fmt: skip
_NUMBER_FIELDS = ("quality", "cost_usd", "tokens_in", "tokens_out", "latency_ms", "propensity")
_BOOL_TEXT = {"true": True, "false": False}
_TEXT_PART = 'a list of {"type": "text", "text": ...} parts'


def load_outcomes(
    data_dir: Path | None,
    traces: Sequence[Path],
    strict: bool = False,
    sources: Sequence[str] | None = None,
    trace_split: str | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """All outcome rows and, per input file, its path, sha256 and row count.

    `trace_split` puts every trace row in that split (evaluation treats traces as test rows)
    instead of the split each record names or hashes to.
    """
    if data_dir is None and not traces:
        raise RouterError("give --data-dir (the public data folder) and/or --traces files")
    frames, files = [], []
    if data_dir is not None:
        public = load_public(data_dir, sources)
        frames.append(public)
        for path in sorted(p for p in Path(data_dir).rglob("*") if _is_data(p)):
            files.append({"path": str(path.relative_to(data_dir)), "sha256": sha256_of(path),
                          "bytes": path.stat().st_size})
        files.append({"path": str(data_dir), "rows": int(len(public))})
    for path in traces:
        frame, errors = read_traces(path, strict=strict)
        for error in errors:
            logger.warning("%s: %s (skipped)", path, error)
        frames.append(frame if trace_split is None else frame.assign(split=trace_split))
        files.append({"path": str(path), "sha256": sha256_of(Path(path)), "rows": len(frame),
                      "skipped_lines": len(errors)})
    return pd.concat(frames, ignore_index=True), files


def _is_data(path: Path) -> bool:
    return path.is_file() and path.suffix in {".csv", ".json", ".jsonl", ".parquet"}


def load_public(data_dir: str | Path, sources: Sequence[str] | None = None) -> pd.DataFrame:
    """All public outcomes (or the datasets named in `sources`) in one frame."""
    names = list(PUBLIC_LOADERS) if sources is None else list(sources)
    unknown = sorted(set(names) - set(PUBLIC_LOADERS))
    if unknown:
        raise RouterError(
            f"The 'sources' parameter must name datasets among {list(PUBLIC_LOADERS)}. "
            f"Got {unknown} instead."
        )
    if not any((Path(data_dir) / name).is_dir() for name in names):
        raise RouterError(
            f"no public data in {data_dir}: it holds none of the folders {names} "
            "(the layout of ../shared/data)"
        )
    frames = [PUBLIC_LOADERS[name](data_dir) for name in names]
    return pd.concat(frames, ignore_index=True) if frames else outcome_frame(pd.DataFrame())


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows, prompts and models per source and split: what a training run is built from."""
    return (
        frame.groupby(["dataset", "source", "split"], sort=True)
        .agg(rows=("model", "size"), prompts=("prompt_id", "nunique"), models=("model", "nunique"))
        .reset_index()
    )


def read_traces(path: str | Path, strict: bool = False) -> tuple[pd.DataFrame, list[TraceError]]:
    """Outcomes from a TRACES.md file (.jsonl, .csv, .parquet) and the errors of skipped records.

    With `strict` the first bad record raises its TraceError; otherwise it is skipped and its
    error returned, so one bad line never costs a whole log.
    """
    path = Path(path)
    if path.suffix not in _FORMATS:
        raise TraceError(f"cannot read {path.name}: trace files must be {sorted(_FORMATS)}")
    rows, errors = _valid_rows(path, strict)
    if errors:
        logger.warning("skipped %d bad trace records in %s", len(errors), path.name)
    frame = outcome_frame(pd.DataFrame(rows))
    keys = pd.Series([_prompt_key(row["prompt"], row["messages"]) for row in rows], dtype=str)
    return outcome_frame(drop_cross_split_duplicates(frame, keys)), errors


def _valid_rows(path: Path, strict: bool) -> tuple[list[dict[str, Any]], list[TraceError]]:
    """Outcome rows of the records that pass validation, and the errors of those that do not."""
    records, decode = _FORMATS[path.suffix]
    rows, errors = [], []
    for line, raw in records(path):
        try:
            record = decode(raw, line)
            _validate_record(record, line)
        except TraceError as error:
            if strict:
                raise
            errors.append(error)
            continue
        rows.append(_outcome_row(record, default_source=path.stem))
    return rows, errors


# Reading: each format yields (line, raw record) and decodes one raw record into a plain dict.


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as lines:
        for line, text in enumerate(lines, start=1):
            if text.strip():
                yield line, text


def _decode_json(text: str, line: int) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise TraceError(f"not valid JSON ({error.msg})", line=line) from None
    if not isinstance(record, dict):
        raise TraceError("a trace must be a JSON object", line=line)
    return {key: value for key, value in record.items() if value is not None}


def _table_rows(frame: pd.DataFrame) -> Iterator[tuple[int, dict[str, Any]]]:
    yield from enumerate(frame.to_dict("records"), start=2)  # line 1 is the header


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return _table_rows(pd.read_csv(path, dtype=str, keep_default_na=False))


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return _table_rows(pd.read_parquet(path))


def _decode_csv(raw: dict[str, str], line: int) -> dict[str, Any]:
    """CSV cells are text: parse the numeric, boolean and JSON fields; an empty cell is absent."""
    record: dict[str, Any] = {key: value for key, value in raw.items() if value != ""}
    for field in _NUMBER_FIELDS:
        if field in record:
            try:
                record[field] = float(record[field])
            except ValueError:
                raise TraceError("must be a number", line=line, field=field) from None
    if "success" in record:
        text = record["success"].strip().lower()
        if text not in _BOOL_TEXT:
            raise TraceError("must be true or false", line=line, field="success")
        record["success"] = _BOOL_TEXT[text]
    if "messages" in record:
        try:
            record["messages"] = json.loads(record["messages"])
        except json.JSONDecodeError:
            message = "must be a JSON list of messages"
            raise TraceError(message, line=line, field="messages") from None
    return record


def _decode_parquet(raw: dict[str, Any], line: int) -> dict[str, Any]:
    """Parquet gives numpy arrays and scalars and fills absent struct keys with null."""
    record = _plain(raw)
    return {key: value for key, value in record.items() if not _is_missing(value)}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# suffix -> (records of the file with their line numbers, decoder of one record)
_Records = Callable[[Path], Iterator[tuple[int, Any]]]
_Decoder = Callable[[Any, int], dict[str, Any]]
_FORMATS: dict[str, tuple[_Records, _Decoder]] = {
    ".jsonl": (_jsonl_lines, _decode_json),
    ".csv": (_csv_rows, _decode_csv),
    ".parquet": (_parquet_rows, _decode_parquet),
}


# Validation: one function per TRACES.md rule group; each raises TraceError(line, field).


def _validate_record(record: dict[str, Any], line: int) -> None:
    """Check one decoded record against every TRACES.md rule; unknown fields are ignored."""
    if "messages" not in record and "prompt" not in record:
        raise TraceError("one of 'messages' or 'prompt' is required", line=line, field="messages")
    if "model" not in record:
        raise TraceError("is required", line=line, field="model")
    _check_strings(record, line)
    _check_numbers(record, line)
    _check_label(record, line)
    if "messages" in record:
        _check_messages(record["messages"], line)


def _check_strings(record: dict[str, Any], line: int) -> None:
    for field in (*_STRING_FIELDS, "prompt"):
        value = record.get(field)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TraceError("must be a non-empty string", line=line, field=field)
    if record.get("split") not in (None, "train", "test"):
        raise TraceError("must be 'train' or 'test'", line=line, field="split")
    if "timestamp" in record:
        try:
            datetime.fromisoformat(record["timestamp"])
        except ValueError:
            raise TraceError("must be an RFC 3339 time", line=line, field="timestamp") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_numbers(record: dict[str, Any], line: int) -> None:
    for field in ("cost_usd", "latency_ms"):
        value = record.get(field)
        if value is not None and (not _is_number(value) or value < 0):
            raise TraceError("must be a number >= 0", line=line, field=field)
    for field in ("tokens_in", "tokens_out"):
        value = record.get(field)
        if value is not None and not (_is_number(value) and value >= 0 and value == int(value)):
            raise TraceError("must be an integer >= 0", line=line, field=field)
    value = record.get("propensity")
    if value is not None and (not _is_number(value) or not 0 < value <= 1):
        raise TraceError("must be a number in (0, 1]", line=line, field="propensity")


def _check_label(record: dict[str, Any], line: int) -> None:
    if "success" in record and not isinstance(record["success"], bool):
        raise TraceError("must be true or false", line=line, field="success")
    if "quality" in record:
        value = record["quality"]
        if not _is_number(value) or not 0 <= value <= 1:
            raise TraceError("must be a number in [0, 1]", line=line, field="quality")
    elif "success" not in record:
        raise TraceError("is required unless 'success' is given", line=line, field="quality")


def _check_messages(messages: Any, line: int) -> None:
    if not isinstance(messages, list) or not messages:
        raise TraceError("must be a non-empty list of chat messages", line=line, field="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TraceError("must be an object", line=line, field=where)
        if message.get("role") not in _ROLES:
            raise TraceError(
                f"must be one of {', '.join(_ROLES)}; got {message.get('role')!r}",
                line=line,
                field=f"{where}.role",
            )
        _check_content(message, line, where)


def _check_content(message: dict[str, Any], line: int, where: str) -> None:
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise TraceError("must be a list", line=line, field=f"{where}.tool_calls")
    if content is None:
        if message["role"] == "assistant" and tool_calls:
            return
        raise TraceError(
            "may be null only for an assistant message with tool_calls",
            line=line,
            field=f"{where}.content",
        )
    if isinstance(content, str) or (isinstance(content, list) and all(map(_is_text, content))):
        return
    raise TraceError(f"must be a string or {_TEXT_PART}", line=line, field=f"{where}.content")


def _is_text(part: Any) -> bool:
    is_part = isinstance(part, dict) and part.get("type") == "text"
    return is_part and isinstance(part.get("text"), str)


# Building the outcome row of a valid record.


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n\n".join(part.get("text", "") for part in content)
    return content or ""


def last_user_text(messages: list[dict[str, Any]] | None) -> str:
    """The `prompt` of a conversation: its last user message, the request being routed."""
    users = [message for message in messages or [] if message.get("role") == "user"]
    return _message_text(users[-1]) if users else ""


def _prompt_key(prompt: str, messages: list[dict[str, Any]] | None) -> str:
    """What ids and splits hash: the prompt, or the whole conversation when there is one.

    A single user message with string content is the `prompt` shorthand, so it hashes alike.
    """
    if messages is None:
        return normalise_prompt(prompt)
    if len(messages) == 1 and messages[0]["role"] == "user":
        return normalise_prompt(_message_text(messages[0]))
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def _outcome_row(record: dict[str, Any], default_source: str) -> dict[str, Any]:
    messages = record.get("messages")
    # validation guarantees messages whenever prompt is missing
    prompt = record["prompt"] if "prompt" in record else last_user_text(messages)
    key = _prompt_key(prompt, messages)
    source = record.get("source", default_source)
    quality = record["quality"] if "quality" in record else float(record["success"])
    return {
        "prompt_id": record.get("prompt_id", f"{source}:{text_id(key)}"),
        "prompt": prompt,
        "messages": messages,
        "model": record["model"],
        "quality": quality,
        "cost_usd": record.get("cost_usd", np.nan),
        "tokens_in": record.get("tokens_in", np.nan),
        "tokens_out": record.get("tokens_out", np.nan),
        "source": source,
        "dataset": source.split("/")[0],
        "split": record.get("split", hash_split(key)),
        "task": record.get("task"),
        "propensity": record.get("propensity", np.nan),
        "decision_id": record.get("decision_id"),
    }
