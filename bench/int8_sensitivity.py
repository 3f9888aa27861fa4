"""Which encoder MatMuls must stay fp32 for int8 to keep the decisions? Measured, per MatMul.

    .venv/bin/python bench/int8_sensitivity.py --data-dir ../shared/data          # ~15 min
    .venv/bin/python bench/int8_sensitivity.py --data-dir ../shared/data --keep 6 # greedy to 6

Uses TRAINING-split prompts only (a seeded sample of `--prompts`), so the recipe is never chosen
on the test split that `python bench/backend_agreement.py` then checks it on. The reference
is the fp32 ONNX encoder (it agrees with torch on every test decision).

1. Sensitivity: for each of the 36 weight MatMuls, quantise that one alone (all others fp32),
   encode in random batches of the serving batch size, and measure how far the shipped head's
   scores move (mean over prompts of the largest per-tier |score difference|; the decision
   sweep flips about in proportion to it), the share of (prompt, quality_target) decisions
   that change, and 1 - cosine of the vectors.
2. Greedy: keep the most sensitive MatMuls in fp32, one more at a time (ranked by score error
   per unit of compute, an FFN MatMul costing four attention projections), and measure the
   decision agreement of the whole recipe at batch 1 and at the serving batch size, and its
   share of the encoder's MatMul compute left in fp32.

Speed is not measured here (the numbers would be noise on a shared machine); time the
candidate recipes with `bench/route_bench.py` or `--time` on a quiet machine.
The result depends on the classifier head: re-run after retraining it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from backend_agreement import encode_batched

from router.config import Settings, load_settings
from router.config.int8_recipes import LAYER_MATMULS, Int8Recipe, all_matmuls
from router.decision.artifact import RouterModel, load_model
from router.decision.encoders.onnx_backend import OnnxEmbedder
from router.decision.features import CallView
from training.evaluate import evaluation_table
from training.labels import views_of
from training.scoring import policy_choices

# Relative compute of each weight MatMul of a layer (hidden 384, FFN 1536).
COST = {m: (4.0 if m in ("intermediate/dense", "output/dense") else 1.0) for m in LAYER_MATMULS}


def cost(matmul: str) -> float:
    return COST[matmul.split("/", 1)[1]]


@dataclass
class Sample:
    """Training-split prompts, their views and tasks, and the fp32 reference outcome."""

    texts: list[str]
    views: list[CallView]
    tasks: list[str | None]
    vectors: np.ndarray
    scores: np.ndarray
    choices: np.ndarray


def training_sample(data_dir: Path, settings: Settings, n: int, seed: int) -> tuple[Any, Any]:
    table, _ = evaluation_table(data_dir, [], settings)
    train = table.prompts[table.prompts["split"] == "train"]
    rows = np.random.default_rng(seed).permutation(len(train))[:n]
    part = train.iloc[np.sort(rows)]
    tasks = [t if isinstance(t, str) else None for t in part["task"]]
    return views_of(part), tasks


class Probe:
    """Scores any recipe on the sample against the fp32 reference."""

    def __init__(self, sample: Sample, model: RouterModel, settings: Settings, cache: Path,
                 threads: int, seed: int):
        self.sample, self.model, self.settings = sample, model, settings
        self.cache, self.threads, self.seed = cache, threads, seed

    def embedder(self, recipe: Int8Recipe) -> OnnxEmbedder:
        return OnnxEmbedder(quantized=True, threads=self.threads, cache_dir=self.cache,
                            recipe=recipe)

    def measure(self, recipe: Int8Recipe, batch: int) -> dict[str, float]:
        s = self.sample
        vectors = encode_batched(self.embedder(recipe), s.texts, batch, self.seed)
        scores = self.model.scores(vectors, s.views, self.settings.tier_names)
        choices = policy_choices(scores, s.views, s.tasks, self.settings)
        return {
            "score_error": float(np.abs(scores - s.scores).max(axis=1).mean()),
            "agreement": float((choices == s.choices).mean()),
            "one_minus_cosine": float(1.0 - np.sum(vectors * s.vectors, axis=1).mean()),
        }


def sensitivities(probe: Probe, batch: int) -> list[dict[str, Any]]:
    """Each MatMul quantised alone (random batches of `batch`), most harmful first."""
    names = all_matmuls()
    rows = []
    for i, name in enumerate(names):
        started = time.perf_counter()
        recipe = Int8Recipe(f"only-{i}", tuple(n for n in names if n != name))
        row = {"matmul": name, "cost": cost(name), **probe.measure(recipe, batch)}
        rows.append(row)
        print(f"  {name:32s} score error {row['score_error']:.5f}  agreement "
              f"{row['agreement']:.4f}  1-cos {row['one_minus_cosine']:.2e}  "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return sorted(rows, key=lambda r: -r["score_error"])


def reused_sensitivities(path: Path, model: str, prompts: int, seed: int) -> list[dict[str, Any]]:
    """Step 1 from an earlier run, if it measured the same model on the same sample."""
    earlier = json.loads(path.read_text())
    if (earlier["model"], earlier["prompts"], earlier["seed"]) != (model, prompts, seed):
        raise SystemExit(f"{path} measured {earlier['model']} on {earlier['prompts']} prompts "
                         f"(seed {earlier['seed']}), not {model} on {prompts} (seed {seed})")
    return list(earlier["sensitivity"])


def greedy(
    probe: Probe, ranked: list[str], start: int, keep: int, batch: int
) -> list[dict[str, Any]]:
    """Recipes keeping the first k of `ranked` in fp32, k = start..keep, at batch 1 and `batch`."""
    total = sum(cost(m) for m in all_matmuls())
    rows = []
    for k in range(start, keep + 1):
        recipe = Int8Recipe(f"top-{k}", tuple(ranked[:k]))
        row: dict[str, Any] = {"k": k, "fp32": ranked[:k],
                               "fp32_compute_share": sum(cost(m) for m in ranked[:k]) / total}
        for b in (1, batch):
            row[f"batch {b}"] = probe.measure(recipe, b)
        rows.append(row)
        print(f"  k={k:2d} fp32 share {row['fp32_compute_share']:.3f}  " + "  ".join(
            f"b{b}: agreement {row[f'batch {b}']['agreement']:.4f} score error "
            f"{row[f'batch {b}']['score_error']:.5f}" for b in (1, batch)), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None, help="default: the config's model")
    parser.add_argument("--prompts", type=int, default=2000, help="training-split sample size")
    parser.add_argument("--keep", type=int, default=8, help="greedy: up to this many fp32")
    parser.add_argument("--rank", choices=["per-cost", "error"], default="per-cost")
    parser.add_argument("--sensitivity-from", type=Path, default=None,
                        help="reuse step 1 from an earlier --out file (same model and prompts)")
    parser.add_argument("--start", type=int, default=0, help="greedy: first k to measure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args()

    settings = load_settings(args.config)
    model = load_model(args.model or settings.model_dir)
    views, tasks = training_sample(args.data_dir, settings, args.prompts, args.seed)
    texts = [v.text for v in views]
    with tempfile.TemporaryDirectory(prefix="int8-sensitivity-") as tmp:
        cache = Path(tmp)
        fp32 = OnnxEmbedder(quantized=False, threads=args.threads,
                            cache_dir=settings.embedder.onnx_cache_dir)
        shutil.copy(fp32.model_path, cache / fp32.model_path.name)  # no second export
        vectors = fp32.encode(texts)
        scores = model.scores(vectors, views, settings.tier_names)
        sample = Sample(texts, views, tasks, vectors, scores,
                        policy_choices(scores, views, tasks, settings))
        probe = Probe(sample, model, settings, cache, args.threads, args.seed)
        print(f"{len(texts)} training-split prompts, model {model.version}; each MatMul alone:")
        if args.sensitivity_from is not None:
            rows = reused_sensitivities(args.sensitivity_from, model.version, len(texts), args.seed)
        else:
            rows = sensitivities(probe, settings.embedder.batch_size)
        key = (lambda r: -r["score_error"] / r["cost"]) if args.rank == "per-cost" else (
            lambda r: -r["score_error"])
        ranked = [r["matmul"] for r in sorted(rows, key=key)]
        print(f"greedy, ranked by {args.rank}:")
        steps = greedy(probe, ranked, args.start, args.keep, settings.embedder.batch_size)
    result = {"model": model.version, "prompts": len(texts), "seed": args.seed,
              "sensitivity": rows, "ranked": ranked, "greedy": steps}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
