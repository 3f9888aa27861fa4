"""The JSON log takes in what libraries log, quietens their INFO, and keeps tqdm off a file."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterator

import pytest

from router.serving.logs import (
    QUIET_LIBRARIES,
    LibraryRecords,
    adopt_library_loggers,
    configure_logging,
    progress_bars_only_on_a_terminal,
)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """configure_logging into a buffer; the process's logging restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    yield buffer
    logging.captureWarnings(False)
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def root_record(level: int, pathname: str) -> logging.LogRecord:
    return logging.LogRecord("root", level, pathname, 1, "pass %s", ("fold",), None)


def test_a_library_logging_on_the_root_logger_is_named_after_it_and_its_info_dropped() -> None:
    where = "/venv/lib/python3.11/site-packages/onnxruntime/quantization/quantize.py"
    keep = LibraryRecords(logging.INFO)
    info, warning = root_record(logging.INFO, where), root_record(logging.WARNING, where)
    assert keep.filter(info) is False
    assert keep.filter(warning) is True and warning.name == "onnxruntime"
    ours = root_record(logging.INFO, "/work/router/serving/holder.py")  # not a library
    assert keep.filter(ours) is True and ours.name == "root"
    assert LibraryRecords(logging.DEBUG).filter(root_record(logging.INFO, where)) is True


def test_library_loggers_write_json_and_only_from_warning(json_log: io.StringIO) -> None:
    logging.getLogger("sentence_transformers.base.model").info("Loading SentenceTransformer")
    logging.getLogger("onnxruntime").warning("pre-processing advised")
    logging.getLogger("router.serving.holder").info("model loaded")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a deprecation", DeprecationWarning, stacklevel=1)
    got = {(r["logger"], r["msg"].splitlines()[0][:40]) for r in records(json_log)}
    assert ("onnxruntime", "pre-processing advised") in got
    assert ("router.serving.holder", "model loaded") in got
    assert not [r for r in records(json_log) if "Loading SentenceTransformer" in r["msg"]]
    assert [r for r in records(json_log) if r["logger"] == "py.warnings"]


def test_transformers_own_handler_is_replaced_by_ours(json_log: io.StringIO) -> None:
    hf_logging = pytest.importorskip("transformers.utils.logging")
    hf_logging.get_logger("transformers.modeling_utils")  # installs its stderr handler
    adopt_library_loggers()
    library = logging.getLogger("transformers")
    assert library.handlers == [] and library.propagate
    library.warning("weights not initialised")
    assert [r for r in records(json_log) if r["logger"] == "transformers"
            and r["msg"] == "weights not initialised"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_off_unless_stderr_is_a_terminal(monkeypatch) -> None:
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    assert progress_bars_only_on_a_terminal(Terminal()) is True
    assert "TQDM_DISABLE" not in os.environ
    assert progress_bars_only_on_a_terminal(io.StringIO()) is False
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_a_users_own_progress_setting_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "0")
    progress_bars_only_on_a_terminal(io.StringIO())
    assert os.environ["TQDM_DISABLE"] == "0"
