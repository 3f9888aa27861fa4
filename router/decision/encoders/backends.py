"""`make_embedder`: the configured backend, with the LRU cache in front when one is configured.

Heavy libraries (torch, sentence-transformers, onnxruntime) are imported only when a backend
is constructed, so the API, the policy and most tests stay light.
"""

from __future__ import annotations

from router.config import EmbedderConfig
from router.decision.encoders.base import Embedder
from router.decision.encoders.cache import CachedEmbedder


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Build the configured backend, with the LRU cache in front when one is configured."""
    inner: Embedder
    if config.backend == "torch":
        from router.decision.encoders.torch_backend import TorchEmbedder

        inner = TorchEmbedder(threads=config.threads, max_seq_length=config.max_seq_length)
    else:
        from router.config.int8_recipes import int8_recipe
        from router.decision.encoders.onnx_backend import OnnxEmbedder

        inner = OnnxEmbedder(
            quantized=config.backend == "onnx-int8",
            threads=config.threads,
            max_seq_length=config.max_seq_length,
            cache_dir=config.onnx_cache_dir,
            recipe=int8_recipe(config.int8_recipe),
        )
    return CachedEmbedder(inner, config.cache_size) if config.cache_size > 0 else inner
