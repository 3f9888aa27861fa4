"""The reference fp32 backend: sentence-transformers on PyTorch (imported when constructed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router.decision.encoders.base import DIMENSION, MODEL_NAME, weights_dir


class TorchEmbedder:
    """The reference fp32 path: sentence-transformers on PyTorch, CPU, a set number of threads."""

    def __init__(self, threads: int = 2, max_seq_length: int = 256):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model = SentenceTransformer(
            str(weights_dir()), device="cpu", local_files_only=True  # never a hub
        )
        self._model.max_seq_length = max_seq_length
        self.name = f"{MODEL_NAME}@torch"
        self.dimension = DIMENSION

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
