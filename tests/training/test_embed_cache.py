"""training/embed_cache.py: keyed by content, so a rerun (a new process) embeds nothing it has seen,
and an interrupted run keeps what it checkpointed. The encoder is the fake one (synthetic)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import training.embed_cache as embed_cache
from tests.conftest import FakeEmbedder
from training.embed_cache import EmbeddingCache


class Counting(FakeEmbedder):
    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.texts = 0
        self.fail_after = fail_after

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.texts += len(texts)
        return super().encode(texts)


def test_a_rerun_embeds_only_new_texts(tmp_path: Path) -> None:
    texts = [f"prompt number {i}" for i in range(300)]
    first = Counting()
    vectors = EmbeddingCache(tmp_path, first).embed(texts + texts[:5])
    assert first.texts == 300  # a repeated text is embedded once
    again = Counting()
    cache = EmbeddingCache(tmp_path, again)  # what a new process sees
    np.testing.assert_array_equal(cache.embed(list(reversed(texts))), vectors[:300][::-1])
    assert again.texts == 0
    cache.embed(texts + ["a new one"])
    assert again.texts == 1


def test_an_interrupted_run_keeps_its_checkpoints(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_cache, "CHECKPOINT_S", 0.0)  # save after every chunk
    texts = [f"text {i}" for i in range(embed_cache.CHUNK * 3)]
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path, Counting(fail_after=2)).embed(texts)
    resumed = Counting()
    EmbeddingCache(tmp_path, resumed).embed(texts)
    assert resumed.texts == embed_cache.CHUNK  # the two chunks done before are not redone


def test_a_digest_ending_in_nul_is_found_again(tmp_path: Path) -> None:
    text = "text 171"  # its sha1 ends in 0x00, which numpy's fixed-width bytes would strip
    assert embed_cache.text_key(text).endswith(b"\0")
    EmbeddingCache(tmp_path, Counting()).embed([text])
    again = Counting()
    EmbeddingCache(tmp_path, again).embed([text])
    assert again.texts == 0
