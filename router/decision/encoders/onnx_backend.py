"""ONNX Runtime backend: the TorchEmbedder's vectors with a faster start-up and less CPU.

The transformer is exported from the installed weights once (and, for int8, dynamically
quantised) into a cache directory; later constructions only load that file. Serving needs only
onnxruntime, tokenizers and numpy: torch and transformers are imported for the one-off export.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from router.config.int8_recipes import Int8Recipe
from router.decision.encoders.base import DIMENSION, MODEL_NAME, weights_dir, weights_version
from router.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Encoding

# Bump when the export or quantisation recipe changes, so files made by the old one are ignored.
RECIPE = "r1"
MAX_BATCH = 64
# Within a length-sorted call, a batch is cut when a text is this many times longer than the
# batch's first one: padding costs compute, and with int8 all rows of a batch share one
# activation scale, so a short text's error grows with what it is batched with. At 2, batches
# of real prompts (50-250 tokens) ran slower than one text at a time (padding); at 1.25 a batch
# of 32 beats one at a time by ~15% on short prompts and ~10% on long ones (bench/route_bench).
PAD_RATIO = 1.25
MIN_BUCKET_TOKENS = 16
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    return Path("~/.cache/tier-router/onnx").expanduser()


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime (CPU), fp32 or int8; mean pooling, then L2 norm."""

    def __init__(
        self,
        quantized: bool,
        threads: int = 2,
        max_seq_length: int = 256,
        cache_dir: Path | None = None,
        recipe: Int8Recipe | None = None,
    ):
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(
                f"The 'threads' parameter must be an int >= 1. Got {threads!r} instead."
            )
        if not isinstance(max_seq_length, int) or not 1 <= max_seq_length <= 512:
            raise ConfigError(
                "The 'max_seq_length' parameter must be an int in [1, 512]. "
                f"Got {max_seq_length!r} instead."
            )
        self.quantized = quantized
        self.recipe = (recipe or Int8Recipe("all")) if quantized else None
        self.threads = threads
        self.max_seq_length = max_seq_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.name = _backend_name(self.recipe)
        self.dimension = DIMENSION

        weights = weights_dir()
        self.model_path = ensure_model_file(weights, self.cache_dir, self.recipe)
        self._session = _load_session(self.model_path, threads)
        self._input_names = [i.name for i in self._session.get_inputs()]
        self._tokenizer = _load_tokenizer(weights / "tokenizer.json", max_seq_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode in length-sorted batches (less padding), returning rows in the caller's order."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if len(texts) == 0:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        for batch in _batches(lengths[order]):
            rows = order[batch]
            out[rows] = self._encode_batch([encodings[i] for i in rows])
        return out

    def _encode_batch(self, encodings: list[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        inputs = {name: feeds[name] for name in self._input_names}
        (hidden,) = self._session.run(["last_hidden_state"], inputs)
        return _mean_pool_normalise(hidden, mask)


def _backend_name(recipe: Int8Recipe | None) -> str:
    """`@onnx`, `@onnx-int8` (everything quantised) or `@onnx-int8:<recipe>`: vectors differ."""
    if recipe is None:
        return f"{MODEL_NAME}@onnx"
    if not recipe.fp32_matmuls:
        return f"{MODEL_NAME}@onnx-int8"
    return f"{MODEL_NAME}@onnx-int8:{recipe.name}"


def _batches(sorted_lengths: np.ndarray) -> Iterator[slice]:
    """Cut token lengths sorted ascending into batches of <= MAX_BATCH of similar length."""
    start = 0
    for i in range(1, len(sorted_lengths) + 1):
        if (
            i == len(sorted_lengths)
            or i - start == MAX_BATCH
            or sorted_lengths[i] > PAD_RATIO * max(int(sorted_lengths[start]), MIN_BUCKET_TOKENS)
        ):
            yield slice(start, i)
            start = i


def _mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The sentence-transformers Pooling(mean) + Normalize modules, in numpy."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def ensure_model_file(weights: Path, cache_dir: Path, recipe: Int8Recipe | None) -> Path:
    """Path of the cached ONNX file for these exact weights (fp32 when `recipe` is None, else
    int8 with the recipe's MatMuls kept fp32), exporting and quantising first if missing."""
    key = f"all-MiniLM-L6-v2-{weights_version()}-{_file_hash(weights / 'model.safetensors')}"
    fp32 = cache_dir / f"{key}-{RECIPE}-fp32.onnx"
    target = fp32 if recipe is None else cache_dir / f"{key}-{RECIPE}-{_int8_suffix(recipe)}.onnx"
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if not fp32.is_file():
            with _atomic_path(fp32) as tmp:
                _export_fp32(weights, tmp)
        if recipe is not None:
            with _atomic_path(target) as tmp:
                _quantize_int8(fp32, tmp, recipe.node_names())
    except OSError as exc:
        raise ConfigError(
            f"cannot write the ONNX cache in {cache_dir}: {exc}; set embedder.onnx_cache_dir"
        ) from exc
    return target


def _int8_suffix(recipe: Int8Recipe) -> str:
    """Keyed by the fp32 MatMuls themselves, not the recipe's name, so a renamed recipe is reused
    and an edited one is quantised again."""
    if not recipe.fp32_matmuls:
        return "int8"
    nodes = "\n".join(sorted(recipe.fp32_matmuls)).encode("utf-8")
    return f"int8-keep-{hashlib.sha256(nodes).hexdigest()[:12]}"


def _file_hash(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


@contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """A temp path beside target, moved into place only once fully written and synced."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o644)  # mkstemp makes 0600; the cache may be shared by a service user
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(weights: Path, out: Path) -> None:
    """Trace the transformer (up to last_hidden_state) with dynamic batch and sequence axes.

    The legacy TorchScript exporter (dynamo=False) is used: the dynamo one needs onnxscript.
    Eager attention exports to plain MatMul/Softmax, which ORT runs faster than the SDPA graph.
    """
    import torch
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        """Keyword call and one output: positional args no longer line up with forward()."""

        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = AutoModel.from_pretrained(
        str(weights), attn_implementation="eager", local_files_only=True  # never a hub
    ).eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(
            LastHidden(model),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(out),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            dynamic_axes={name: axes for name in (*INPUT_NAMES, "last_hidden_state")},
            opset_version=17,
            do_constant_folding=True,
        )


def _quantize_int8(fp32: Path, out: Path, fp32_nodes: Sequence[str] = ()) -> None:
    """Dynamic int8 of the 36 weight MatMuls but `fp32_nodes`, one scale per output channel.

    Per-tensor scales (the defaults) drop cosine to fp32 to ~0.95; per-channel keeps ~0.993.
    Signed weights take the fast u8*s8 (VNNI) kernels; QUInt8 weights agreed as well but ran at
    fp32 speed here. reduce_range (7-bit) only helps CPUs without VNNI and cost accuracy here.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    present = {node.name for node in onnx.load(str(fp32), load_external_data=False).graph.node}
    missing = sorted(set(fp32_nodes) - present)
    if missing:
        raise ConfigError(f"the exported encoder has no MatMul nodes {missing}: the int8 recipe "
                          "does not fit this export (see router/config/int8_recipes.py)")
    quantize_dynamic(
        fp32,
        out,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=False,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=list(fp32_nodes),
        extra_options={"MatMulConstBOnly": True},
    )


def _load_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # the calling thread + threads - 1 pool threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Pool threads spin between the graph's many small ops. Measured on 2 dedicated cores:
    # without spinning one short prompt took 2.5 ms instead of 1.8 ms and the service did 15%
    # fewer requests/s; spinning only lost when other processes were competing for the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _load_tokenizer(path: Path, max_seq_length: int) -> Any:
    """The fast tokenizer alone; tokenizer.json pads to 128 by itself, so padding is turned off."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()
    return tokenizer
