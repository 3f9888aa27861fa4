"""The data step of a run: public data sets and trace files, with the provenance a card needs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from router.decision.artifact import sha256_of
from router.errors import RouterError
from training.ingest import load_public, read_traces

log = logging.getLogger(__name__)


def load_outcomes(
    data_dir: Path | None, traces: Sequence[Path], strict: bool = False,
    sources: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """All outcome rows and, per input file, its path, sha256 and row count."""
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
            log.warning("%s: %s (skipped)", path, error)
        frames.append(frame)
        files.append({"path": str(path), "sha256": sha256_of(Path(path)), "rows": len(frame),
                      "skipped_lines": len(errors)})
    return pd.concat(frames, ignore_index=True), files


def _is_data(path: Path) -> bool:
    return path.is_file() and path.suffix in {".csv", ".json", ".jsonl", ".parquet"}
