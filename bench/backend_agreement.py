"""Does a faster encoder backend keep the decisions? int8 ONNX against the fp32 reference.

    .venv/bin/python bench/backend_agreement.py --data-dir ../shared/data

On the test split of every public source: embed each prompt's view with the reference backend
(torch fp32, through the training embedding cache) and with the candidate (onnx-int8 by
default), score both with the shipped model, and route both through `decision.policy.decide` at
every ``quality_target`` of the evaluation sweep. Reports the share of (prompt, target)
decisions that agree, the worst single target, and the APGR of every tier pair for both.

int8 activations are quantised with one scale per batch, so a vector depends a little on what
it was batched with. The candidate is therefore run twice: one text per call (a lone request)
and in random batches of the serving batch size (what the micro-batcher makes under load).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from router.config import Settings, load_settings
from router.decision.artifact import load_model
from router.decision.encoders.base import Embedder
from training.embed_cache import EmbeddingCache, training_embedder
from training.evaluate import evaluation_table
from training.labels import views_of
from training.scoring import TARGETS, policy_choices
from training.selection import pair_apgrs

log = logging.getLogger(__name__)

AGREEMENT_TARGET = 0.99
APGR_TOLERANCE = 0.01


def encode_batched(embedder: Embedder, texts: list[str], batch: int, seed: int) -> np.ndarray:
    """Vectors of `texts` encoded in random batches of `batch`, returned in the given order."""
    order = np.random.default_rng(seed).permutation(len(texts))
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(texts), batch):
        rows = order[start:start + batch]
        out[rows] = embedder.encode([texts[i] for i in rows])
    return out


def compare_backends(
    data_dir: Path, settings: Settings, model_dir: Path | None = None,
    candidate: str | Embedder = "onnx-int8", reference: str = "torch",
    cache_dir: Path = Path(".cache/embeddings"), seed: int = 0,
) -> dict[str, Any]:
    """Agreement and APGR of `candidate` (a backend name, or an embedder built elsewhere, e.g. a
    quantisation being tried) against `reference` on the public test split."""
    model = load_model(model_dir or settings.model_dir)
    table, _ = evaluation_table(data_dir, [], settings)
    test = table.subset((table.prompts["split"] == "test").to_numpy())
    views = views_of(test.prompts)
    texts = [v.text for v in views]
    tasks = [t if isinstance(t, str) else None for t in test.prompts["task"]]
    names = settings.tier_names

    ref_vectors = EmbeddingCache(cache_dir, training_embedder(settings, reference)).embed(texts)
    fast = training_embedder(settings, candidate) if isinstance(candidate, str) else candidate
    runs = {"batch 1": encode_batched(fast, texts, 1, seed),
            f"batch {settings.embedder.batch_size}": encode_batched(
                fast, texts, settings.embedder.batch_size, seed)}

    ref_scores = model.scores(ref_vectors, views, names)
    ref_choices = policy_choices(ref_scores, views, tasks, settings)
    ref_apgr = pair_apgrs(ref_scores, test.labels, names)
    report: dict[str, Any] = {
        "prompts": len(texts), "targets": len(TARGETS), "reference": reference,
        "candidate": candidate if isinstance(candidate, str) else fast.name,
        "model": model.version, "reference_apgr": ref_apgr, "runs": {},
    }
    for name, vectors in runs.items():
        scores = model.scores(vectors, views, names)
        same = policy_choices(scores, views, tasks, settings) == ref_choices
        apgr = pair_apgrs(scores, test.labels, names)
        cosine = np.sum(vectors * ref_vectors, axis=1)
        default = int(np.argmin(np.abs(TARGETS - settings.quality_target)))
        report["runs"][name] = {
            "agreement": float(same.mean()),
            "agreement_at_default_target": float(same[default].mean()),
            "worst_target_agreement": float(same.mean(axis=1).min()),
            "worst_target": float(TARGETS[int(same.mean(axis=1).argmin())]),
            "apgr": apgr,
            "apgr_diff": {k: apgr[k] - ref_apgr[k] for k in ref_apgr if k in apgr},
            "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
            "max_score_diff": float(np.abs(scores - ref_scores).max()),
        }
    return report


def meets_targets(report: dict[str, Any]) -> bool:
    return all(run["agreement"] >= AGREEMENT_TARGET
               and all(abs(d) <= APGR_TOLERANCE for d in run["apgr_diff"].values())
               for run in report["runs"].values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=None, help="default: the config's model")
    parser.add_argument("--candidate", default="onnx-int8", choices=["onnx", "onnx-int8"])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    report = compare_backends(args.data_dir, load_settings(args.config), args.model,
                              args.candidate, cache_dir=args.cache_dir)
    print(json.dumps(report, indent=2))
    ok = meets_targets(report)
    print(f"targets (agreement >= {AGREEMENT_TARGET:.0%}, |APGR diff| <= {APGR_TOLERANCE}): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
