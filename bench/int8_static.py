"""Static int8 (QDQ, calibrated activations) against the dynamic int8 recipes: speed and decisions.

    .venv/bin/python bench/int8_static.py --data-dir ../shared/data                 # MinMax
    .venv/bin/python bench/int8_static.py --data-dir ../shared/data --method Percentile Entropy

Dynamic int8 picks each activation's scale per batch, so a vector depends a little on what it
was batched with. Static int8 fixes every activation scale once, from calibration texts. Here
the weight MatMuls of the fp32 export (the same 36 the dynamic recipes see; attention's
activation-by-activation MatMuls stay fp32) are quantised with
`onnxruntime.quantization.quantize_static`: QDQ, per-channel signed weights, unsigned
activations, calibrated on a seeded sample of TRAINING-split prompts (one text per call: no
padding in the ranges). Nothing is cached: the files live in a temporary directory.

For each calibration method it prints the bare encoder's texts/s at batch 1 and 32 on the
short texts `bench/route_bench.py` times (interleaved with the dynamic `all` and `fp32-top10`
and the fp32 encoder, best of `--repeats`), then the decision agreement and APGR difference
against the torch fp32 reference on the TEST split, from `backend_agreement`.

Measured (shipped head, 600-prompt training sample; Percentile/Entropy on the 313 of >= 48
tokens): MinMax 97.9%, Percentile 97.9%, Entropy 97.9% agreement at batch 1 and 32 alike (APGR
within 0.004), below dynamic `all` (98.1%) and the 99% target; 266/300 texts/s at batch 1/32
against 287/325 for dynamic `all` and 220/238 for `fp32-top10`. Static int8 is not shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from backend_agreement import compare_backends, meets_targets
from int8_sensitivity import training_sample
from route_bench import Drawer, agent_messages, load_prompts, long, not_long, short

from router.config import Settings, load_settings
from router.config.int8_recipes import Int8Recipe, all_matmuls, int8_recipe
from router.decision.encoders.onnx_backend import OnnxEmbedder, _load_session

BATCHES = (1, 32)


class CalibrationTexts:
    """An onnxruntime CalibrationDataReader: one tokenised text per call, no padding.

    The histogram calibrators (Percentile, Entropy) stack every call's activations into one
    array, so they need one shape: with `length`, only texts of at least that many tokens are
    used, cut to `length` (the final [SEP] kept).
    """

    def __init__(self, embedder: OnnxEmbedder, texts: Sequence[str], length: int | None = None):
        self.ids = [list(e.ids) for e in embedder._tokenizer.encode_batch(list(texts))]
        if length is not None:
            self.ids = [ids[:length - 1] + ids[-1:] for ids in self.ids if len(ids) >= length]
        self.input_names = embedder._input_names
        self._rows: Iterator[dict[str, np.ndarray]] = iter(())
        self.rewind()

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for row in self.ids:
            ids = np.asarray([row], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                     "token_type_ids": np.zeros_like(ids)}
            yield {name: feeds[name] for name in self.input_names}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)

    def rewind(self) -> None:
        self._rows = self._feeds()


def quantize_static_file(fp32: Path, out: Path, reader: CalibrationTexts, method: str) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    # No quant_pre_process: its symbolic shape inference fails on this export, and the dynamic
    # recipes are quantised from the same unprocessed file.
    quantize_static(
        fp32, out, reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, method),
        # The QDQ quantiser ignores MatMulConstBOnly: without naming the weight MatMuls it also
        # quantises attention's Q.K^T and softmax.V (the softmax to steps of 1/255).
        nodes_to_quantize=Int8Recipe("weights", tuple(all_matmuls())).node_names(),
        # MatMul outputs stay fp32, as with dynamic int8; quantised, layer 0's FFN output had
        # steps of ~0.8 and agreement fell to 94.5%.
        extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
    )


class FileEmbedder(OnnxEmbedder):
    """The OnnxEmbedder's tokenizer and pooling over an arbitrary ONNX file."""

    def __init__(self, path: Path, name: str, threads: int, cache_dir: Path | None):
        super().__init__(quantized=False, threads=threads, cache_dir=cache_dir)
        self.model_path = path
        self.name = name
        self._session = _load_session(path, threads)
        self._input_names = [i.name for i in self._session.get_inputs()]


def short_texts(data_dir: Path, seed: int, limit: int) -> list[str]:
    """The short texts route_bench's bare encoder is timed on (its default draws, in order)."""
    drawer = Drawer(load_prompts(data_dir, seed))
    drawer.draw("warm-up", 100, short, lambda p: {"prompt": p})
    texts: list[str] = []
    for level in (1, 8, 32, 128):
        n = 300 if level == 1 else 1000
        texts += drawer.draw("short", n, short, lambda p: {"prompt": p}).texts
        drawer.draw("long", max(1, int(n * 0.4)), long, lambda p: {"prompt": p})
        drawer.draw("agent", n, not_long, agent_messages)
    return texts[:limit]


def throughput(encoder: Any, texts: Sequence[str], batch: int) -> float:
    encoder.encode(texts[:8])  # warm
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoder.encode(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - started)


def timed(encoders: dict[str, Any], texts: list[str], repeats: int) -> dict[str, dict[int, float]]:
    """Best texts/s of each encoder at each batch size, the encoders interleaved per repeat."""
    best: dict[str, dict[int, float]] = {name: dict.fromkeys(BATCHES, 0.0) for name in encoders}
    for _ in range(repeats):
        for name, encoder in encoders.items():
            for b in BATCHES:
                best[name][b] = max(best[name][b], throughput(encoder, texts, b))
    return best


def agreement(data_dir: Path, settings: Settings, embedder: Any) -> dict[str, Any]:
    report = compare_backends(data_dir, settings, candidate=embedder)
    runs = {name: {"agreement": run["agreement"],
                   "worst_target_agreement": run["worst_target_agreement"],
                   "max_abs_apgr_diff": max(abs(d) for d in run["apgr_diff"].values()),
                   "cosine_min": run["cosine_min"], "cosine_mean": run["cosine_mean"]}
            for name, run in report["runs"].items()}
    return {"runs": runs, "targets_met": meets_targets(report)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--method", nargs="+", default=["MinMax"],
                        choices=["MinMax", "Percentile", "Entropy", "Distribution"])
    parser.add_argument("--calibration-prompts", type=int, default=300)
    parser.add_argument("--calibration-length", type=int, default=48,
                        help="Percentile/Entropy/Distribution: tokens per calibration text")
    parser.add_argument("--texts", type=int, default=512, help="short texts timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args()

    settings = load_settings(args.config)
    emb = settings.embedder
    fp32 = OnnxEmbedder(quantized=False, threads=emb.threads, cache_dir=emb.onnx_cache_dir)
    views, _ = training_sample(args.data_dir, settings, args.calibration_prompts, args.seed)
    texts = [v.text for v in views]
    result: dict[str, Any] = {"seed": args.seed, "static": {}}
    encoders: dict[str, Any] = {"onnx fp32": fp32}
    for recipe in ("all", "fp32-top10"):
        encoders[f"dynamic {recipe}"] = OnnxEmbedder(
            quantized=True, threads=emb.threads, cache_dir=emb.onnx_cache_dir,
            recipe=int8_recipe(recipe))
    tmp = Path(tempfile.mkdtemp(prefix="int8-static-"))
    try:
        for method in args.method:
            started = time.perf_counter()
            path = tmp / f"static-{method}.onnx"
            length = None if method == "MinMax" else args.calibration_length
            reader = CalibrationTexts(fp32, texts, length)
            quantize_static_file(fp32.model_path, path, reader, method)
            print(f"static {method}: calibrated on {len(reader.ids)} training-split prompts "
                  f"(tokens: {length or 'all'}) in {time.perf_counter() - started:.0f} s",
                  flush=True)
            encoders[f"static {method}"] = FileEmbedder(
                path, f"onnx-int8-static-{method}", emb.threads, emb.onnx_cache_dir)
            if not args.skip_agreement:
                result["static"][method] = agreement(args.data_dir, settings,
                                                     encoders[f"static {method}"])
                print(json.dumps(result["static"][method], indent=2), flush=True)
        timed_texts = short_texts(args.data_dir, args.seed, args.texts)
        load_before = os.getloadavg()[0]
        speed = timed(encoders, timed_texts, args.repeats)
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp)
    result.update(speed=speed, load_before=load_before, load_after=load_after)
    print(f"\nbare encoder, {len(timed_texts)} short texts, best of {args.repeats} (texts/s); "
          f"load average {load_before:.2f} before, {load_after:.2f} after")
    for name, rates in speed.items():
        print(f"  {name:22s} " + "  ".join(f"@{b}: {rates[b]:6.0f}" for b in BATCHES))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
