"""Try cheap, check, escalate on RouterBench MBPP (the test result is the label: an exact check).

Learned from the train split only, reported on the test split, each net of wasted calls:
always-large, a random mixture at 95% of large's quality, prompt-only routing (a logistic head
per tier on the encoder's embeddings of train prompts, its knob picked on train by 5-fold
out-of-fold scores to reach 95% of large's quality), the service's learned map alone (its
decision, not checked), always-cheapest-first (every tier in order until the tests pass) and
check-aware routing (the service's plan for a verifiable call and its escalations). The map and
its check evidence are the service's own code (`fit_map`, `fit_checks`, `choose`,
`cheap_first`, `escalation_tier`), fitted from the train split's outcomes replayed as the
service's evidence increments (`traces.evidence.increments`, `traces.checks.check_increments`):
every train prompt as one call of key ``bench``, task ``mbpp``, on every tier (full
information, propensity 1), its test result the label and the check. One model per tier (a
deployment); two deployments are reported. The same routers then run on ARC-Challenge with a
weak check (the answer starts with an option letter: every answer does), where a plan must not
trust the check.

    nice -n 10 .venv/bin/python bench/cascade_eval.py --data-dir ../shared/data \
        [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import ast
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from router.config import load_settings
from router.decision.policy import threshold_choice
from training.answer_signals import SIGNALS, leave_one_source_out, signals
from training.cascade import Realised, mixed, random_mixture, realise
from training.cascade_replay import check_aware_plans, map_plans, replayed_map
from training.classifier import TierClassifier
from training.embed_cache import EmbeddingCache, training_embedder

DEPLOYMENTS = {
    "mistral-7b / gpt-3.5 / gpt-4": ("mistralai/mistral-7b-chat", "gpt-3.5-turbo-1106",
                                     "gpt-4-1106-preview"),
    "mistral-7b / mixtral-8x7b / gpt-4": ("mistralai/mistral-7b-chat",
                                          "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
}
TARGET = 0.95
KNOBS = np.round(np.linspace(0.0, 1.0, 101), 2)


def load(data_dir: Path, split: str, models: tuple[str, ...]) -> tuple[list[str], np.ndarray,
                                                                        np.ndarray]:
    frame = pd.read_csv(data_dir / "routerbench" / f"mbpp_{split}.csv")
    prompts = ["\n\n".join(dict.fromkeys(ast.literal_eval(p))) for p in frame["prompt"]]
    quality = frame[list(models)].to_numpy(dtype=float)
    cost = frame[[f"{m}|total_cost" for m in models]].to_numpy(dtype=float)
    return prompts, quality, cost


def knob_point(scores: np.ndarray, knob: float) -> list[tuple[int, ...]]:
    return [(threshold_choice(row, knob),) for row in scores]


def prompt_only(x_train: np.ndarray, q_train: np.ndarray, c_train: np.ndarray,
                x_test: np.ndarray) -> tuple[float, list[tuple[int, ...]]]:
    """The knob reaching 95% of large's quality at least cost on out-of-fold train scores,
    and the test plan it gives with a head fitted on all of train."""
    oof = np.zeros_like(q_train)
    for fit_rows, held in KFold(5, shuffle=True, random_state=0).split(x_train):
        head = TierClassifier(tiers=("small", "medium", "large"), head="logreg")
        oof[held] = head.fit(x_train[fit_rows], q_train[fit_rows]).predict_proba(x_train[held])
    large = q_train[:, -1].mean()
    best = (np.inf, 1.0)
    for knob in KNOBS:
        point = realise(q_train, c_train, knob_point(oof, knob))
        if point.quality >= TARGET * large:
            best = min(best, (point.cost, float(knob)))
    head = TierClassifier(tiers=("small", "medium", "large"), head="logreg").fit(x_train, q_train)
    return best[1], knob_point(head.predict_proba(x_test), best[1])


def drawn(quality: np.ndarray, cost: np.ndarray, plans: list[tuple[tuple[int, ...], float]],
          passes: np.ndarray | None = None) -> Realised:
    """Every call on each plan, weighted by the plan's probability (the map's allowance)."""
    return mixed([(realise(quality, cost, [chain] * len(quality), passes), w)
                  for chain, w in plans])


def described(plans: list[tuple[tuple[int, ...], float]]) -> str:
    names = ("small", "medium", "large")
    return " or ".join("->".join(names[t] for t in chain)
                       + (f" ({100 * w:.0f}%)" if len(plans) > 1 else "")
                       for chain, w in plans)


def row(name: str, point: Realised, strongest: Realised, plan: str) -> str:
    share, saving = point.share_of(strongest)
    return (f"| {name} | {plan} | {100 * share:.1f}% | {100 * saving:.1f}% | "
            f"{point.wasted_calls:.0f} | "
            f"{1e3 * point.wasted_cost * (point.calls - point.wasted_calls):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "tier-router-embeddings")
    args = parser.parse_args()
    embedder = training_embedder(load_settings(None), "onnx")
    cache = EmbeddingCache(args.cache_dir, embedder)
    for name, models in DEPLOYMENTS.items():
        p_train, q_train, c_train = load(args.data_dir, "train", models)
        p_test, q_test, c_test = load(args.data_dir, "test", models)
        x_train, x_test = cache.embed(p_train, False), cache.embed(p_test, False)
        n = len(q_test)
        strongest = realise(q_test, c_test, [(2,)] * n)
        mix_share, mix_saving = random_mixture(q_test, c_test, TARGET)
        knob, prompt_plan = prompt_only(x_train, q_train, c_train, x_test)
        learned, table = replayed_map(q_train, c_train)
        mapped = map_plans(learned, table, TARGET)
        aware = check_aware_plans(learned, table, TARGET)
        print(f"\n### {name} (test: {n} prompts; tier accuracy "
              f"{', '.join(f'{q:.3f}' for q in q_test.mean(axis=0))}; mean cost per call "
              f"{', '.join(f'{1e3 * c:.4f}' for c in c_test.mean(axis=0))} mUSD)\n")
        print("| router | plan (learned on train) | quality vs large | saving vs always-large "
              "| wasted calls | wasted mUSD |")
        print("|---|---|---|---|---|---|")
        print(row("always-large", strongest, strongest, "large"))
        print(f"| random mixture | two tiers at 95% | {100 * mix_share:.1f}% | "
              f"{100 * mix_saving:.1f}% | 0 | 0.00 |")
        print(row("prompt-only (logreg head)", realise(q_test, c_test, prompt_plan), strongest,
                  f"knob {knob}"))
        print(row("learned map alone", drawn(q_test, c_test, mapped), strongest,
                  described(mapped)))
        print(row("always-cheapest-first", realise(q_test, c_test, [(0, 1, 2)] * n),
                  strongest, "small->medium->large"))
        print(row("check-aware (the map's plan)", drawn(q_test, c_test, aware), strongest,
                  described(aware)))
    weak_check_table(args.data_dir)
    transfer_table(args.data_dir)


def answer_texts(data_dir: Path, source: str, split: str, model: str
                 ) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(data_dir / "routerbench" / f"{source}_{split}.csv")
    frame = frame[frame[model].notna()]  # a few ARC rows lack some models' outcome
    texts = ["\n".join(ast.literal_eval(t)) if isinstance(t, str) and t.startswith("[")
             else str(t) for t in frame[f"{model}|model_response"]]
    return texts, frame[model].to_numpy(dtype=float)


def load_weak(data_dir: Path, split: str, models: tuple[str, ...]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ARC-Challenge: (quality, cost, the format check's result) per prompt and tier, on the
    prompts every tier answered. The check passes an answer that starts with an option
    letter, right or wrong: a weak check."""
    frame = pd.read_csv(data_dir / "routerbench" / f"arc_challenge_{split}.csv")
    frame = frame[frame[list(models)].notna().all(axis=1)]
    quality = frame[list(models)].to_numpy(dtype=float)
    cost = frame[[f"{m}|total_cost" for m in models]].to_numpy(dtype=float)
    fmt = SIGNALS.index("format_ok")
    passes = np.array([[signals(_text(frame[f"{m}|model_response"].iloc[i]))[fmt]
                        for m in models] for i in range(len(frame))])
    return quality, cost, passes


def _text(response: object) -> str:
    if isinstance(response, str) and response.startswith("["):
        return "\n".join(ast.literal_eval(response))
    return "" if response is None or response != response else str(response)


def weak_check_table(data_dir: Path) -> None:
    """The same routers on ARC-Challenge with a format check: the plan must not trust it."""
    for name, models in DEPLOYMENTS.items():
        q_train, c_train, p_train = load_weak(data_dir, "train", models)
        q_test, c_test, p_test = load_weak(data_dir, "test", models)
        learned, table = replayed_map(q_train, c_train, "arc_challenge", passes=p_train)
        mapped = map_plans(learned, table, TARGET, "arc_challenge")
        aware = check_aware_plans(learned, table, TARGET, "arc_challenge")
        n = len(q_test)
        strongest = realise(q_test, c_test, [(2,)] * n)
        print(f"\n### ARC-Challenge, a weak check (the answer starts with an option letter), "
              f"{name} (test: {n} prompts; tier accuracy "
              f"{', '.join(f'{q:.3f}' for q in q_test.mean(axis=0))}; the check passes "
              f"{', '.join(f'{p:.3f}' for p in p_test.mean(axis=0))})\n")
        print("| router | plan (learned on train) | quality vs large | saving vs always-large "
              "| wasted calls | wasted mUSD |")
        print("|---|---|---|---|---|---|")
        print(row("always-large", strongest, strongest, "large"))
        print(row("learned map alone", drawn(q_test, c_test, mapped), strongest,
                  described(mapped)))
        print(row("always-cheapest-first", realise(q_test, c_test, [(0, 1, 2)] * n, p_test),
                  strongest, "small->medium->large"))
        print(row("check-aware (the map's plan)", drawn(q_test, c_test, aware, p_test),
                  strongest, described(aware)))


def transfer_table(data_dir: Path) -> None:
    """Answer-text signals, leave one source out: do they predict the answer's correctness?"""
    print("\n### Answer-text signals, leave one source out (AUC of the answer's correctness; "
          "0.5 = chance)\n")
    print("| cheap model | held-out source | fitted on the other sources | fitted on its own "
          "train split |")
    print("|---|---|---|---|")
    for model in ("mistralai/mistral-7b-chat", "gpt-3.5-turbo-1106"):
        sources = ("arc_challenge", "mbpp", "winograde")
        train = {s: answer_texts(data_dir, s, "train", model) for s in sources}
        test = {s: answer_texts(data_dir, s, "test", model) for s in sources}
        for source, auc in leave_one_source_out(train, test).items():
            print(f"| {model} | {source} | {auc['transfer']:.3f} | {auc['in_source']:.3f} |")


if __name__ == "__main__":
    main()
