"""`tier-router export`: the trace store written out in the TRACES.md format (JSONL or Parquet).

One record per stored outcome, joined to its decision, so an export reads straight back into
`tier-router train --traces` or any tool that speaks the format. A reported cost is written as
``cost_usd``; an estimated one is left out (readers estimate it again from tokens and prices)
and flagged in ``cost_estimated``. Outcomes whose text was not kept (``prompt_storage`` hash
or none) cannot be valid traces (the format needs ``messages`` or ``prompt``): they are
counted and skipped, never written half-formed.

`export_audit` (``--format audit``) writes every decision, routed or not answered, with its
outcome when one came back: scores before and after adaptation, reason, router version,
propensity, attribution, and ``prompt_hash`` where no text is kept.

`export_features` writes what learning needs when no text was kept: one record per outcome
whose decision stored its features (``store.feature_storage: embedding``): the label, the
tier, the propensity, the cheap features and the float16 embedding (as a list of numbers),
with the embedder and feature version; rows of another embedder or feature version are
counted and skipped.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from router.errors import RouterError
from router.traces.rows import stored_features

log = logging.getLogger(__name__)

FORMATS = (".jsonl", ".parquet")


NO_TEXT = "no prompt text (store.prompt_storage)"
NO_LABEL = "no quality label (outcome-only feedback)"


def trace_records(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any] | str]:
    """TRACES.md records of joined store rows; for a row that cannot be one, the reason."""
    for row in rows:
        if row.get("quality") is None:
            yield NO_LABEL
            continue
        if not (row.get("prompt") or row.get("messages")):
            yield NO_TEXT
            continue
        record: dict[str, Any] = {
            "prompt_id": f"tier-router:{row['prompt_hash']}" if row.get("prompt_hash") else None,
            "messages": json.loads(row["messages"]) if row.get("messages") else None,
            "prompt": row.get("prompt") if not row.get("messages") else None,
            "model": row["model"], "tier": row.get("tier"), "quality": float(row["quality"]),
            "cost_usd": None if row.get("cost_estimated") else row.get("cost_usd"),
            "cost_estimated": bool(row.get("cost_estimated")),
            "tokens_in": row.get("tokens_in"), "tokens_out": row.get("tokens_out"),
            "latency_ms": row.get("latency_ms"), "task": row.get("task"),
            "run_id": row.get("run_id"), "role": row.get("role"), "step": row.get("step"),
            "user": row.get("user_id"), "decision_id": row.get("decision_id"),
            "propensity": row.get("propensity"), "source": row.get("source") or "tier-router",
            "timestamp": datetime.fromtimestamp(float(row["t"]), UTC).isoformat(),
            "error": row.get("error"), "fallback_used": bool(row.get("fallback_used")),
            "router_version": row.get("router_version"),
        }
        yield {k: v for k, v in record.items() if v is not None}


def export_traces(rows: Iterable[dict[str, Any]], out: Path) -> tuple[int, dict[str, int]]:
    """Write `rows` to `out` (.jsonl or .parquet); (records written, {reason skipped: count})."""
    _check_suffix(out)
    records, skipped = [], Counter[str]()
    for record in trace_records(rows):
        if isinstance(record, str):
            skipped[record] += 1
        else:
            records.append(record)
    _write(records, Path(out))
    if skipped:
        log.warning("outcomes skipped: %s", dict(skipped))
    return len(records), dict(skipped)


def feature_records(
    rows: Iterable[dict[str, Any]], embedder: str, dimension: int
) -> Iterator[dict[str, Any] | str]:
    """Feature records of joined store rows; for a row that cannot give one, the reason."""
    for row in rows:
        got = stored_features(row, embedder, dimension)
        if got is None or isinstance(got, str):
            yield got or "no features stored"
            continue
        if row.get("quality") is None:
            yield NO_LABEL
            continue
        vector, view = got
        record = {
            "decision_id": row.get("decision_id"), "prompt_hash": row.get("prompt_hash"),
            "tier": row.get("tier"), "model": row.get("model"), "quality": float(row["quality"]),
            "propensity": row.get("propensity"), "reason": row.get("reason"),
            "task": row.get("task"), "run_id": row.get("run_id"), "role": row.get("role"),
            "step": row.get("step"), "tokens_in": view.tokens_in,
            "features": json.loads(row["features"]) if row.get("features") else {},
            "embedder": row.get("embedder"), "feature_version": row.get("feature_version"),
            "embedding": [round(float(x), 5) for x in vector],
            "timestamp": datetime.fromtimestamp(float(row["t"]), UTC).isoformat(),
            "router_version": row.get("router_version"),
        }
        yield {k: v for k, v in record.items() if v is not None}


def export_features(
    rows: Iterable[dict[str, Any]], out: Path, embedder: str, dimension: int
) -> tuple[int, dict[str, int]]:
    """Write the feature records of `rows` to `out`; (written, {reason skipped: count})."""
    _check_suffix(out)
    records: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for record in feature_records(rows, embedder, dimension):
        if isinstance(record, str):
            skipped[record] = skipped.get(record, 0) + 1
        else:
            records.append(record)
    _write(records, Path(out))
    if skipped:
        log.warning("outcomes without usable features were skipped: %s", skipped)
    return len(records), skipped


def audit_records(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One record per decision: what was decided, why, by which version, and how it went."""
    for row in rows:
        record = {
            "decision_id": row["decision_id"],
            "timestamp": datetime.fromtimestamp(float(row["created_at"]), UTC).isoformat(),
            "tier": row["tier"], "model": row["model"], "reason": row["reason"],
            "detail": row.get("detail"), "scores": json.loads(row["scores"]),
            "prior_scores": json.loads(row["prior_scores"]) if row.get("prior_scores") else None,
            "quality_target": row.get("quality_target"),
            "estimated_cost_usd": row["estimated_cost_usd"], "tokens_in": row["tokens_in"],
            "propensity": row.get("propensity"), "router_version": row["router_version"],
            "task": row.get("task"), "run_id": row.get("run_id"), "role": row.get("role"),
            "step": row.get("step"), "user": row.get("user_id"), "api_key": row.get("api_key"),
            "prompt_hash": row.get("prompt_hash"), "prompt": row.get("prompt"),
            "messages": json.loads(row["messages"]) if row.get("messages") else None,
        }
        if row.get("received_at") is not None:
            record["outcome"] = {k: v for k, v in {
                "received_at": datetime.fromtimestamp(float(row["received_at"]), UTC).isoformat(),
                "model_used": row.get("model_used"), "tier": row.get("outcome_tier"),
                "quality": row.get("quality"), "cost_usd": row.get("cost_usd"),
                "cost_estimated": bool(row.get("cost_estimated")),
                "tokens_in": row.get("outcome_tokens_in"), "tokens_out": row.get("tokens_out"),
                "latency_ms": row.get("latency_ms"), "error": row.get("error"),
                "fallback_used": bool(row.get("fallback_used")),
            }.items() if v is not None}
        yield {k: v for k, v in record.items() if v is not None}


def export_audit(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """Write every decision of `rows` (`TraceStore.audit_rows`) to `out`; how many."""
    _check_suffix(out)
    records = list(audit_records(rows))
    if Path(out).suffix == ".parquet":  # nested fields as JSON text: one flat table
        records = [{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()}
                   for r in records]
    _write(records, Path(out))
    return len(records)


def _check_suffix(out: Path) -> None:
    if Path(out).suffix not in FORMATS:
        raise RouterError(f"export writes {' or '.join(FORMATS)} files. Got {Path(out).name!r}.")


def _write(records: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix == ".jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        pd.DataFrame(records).to_parquet(tmp, index=False)
    tmp.replace(out)
