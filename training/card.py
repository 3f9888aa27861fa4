"""MODEL_CARD.md, written from a model's metadata.json and its evaluation report.json.

Generated, never typed: the card's numbers are the report's, so they cannot drift from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from training.outputs import summary_rows

TRAIN_COMMAND = "tier-router train --data-dir ../shared/data --out models/default --seed 0"
EVAL_COMMAND = (
    "tier-router evaluate --data-dir ../shared/data --model models/default "
    "--out reports/default --lodo --seed 0"
)
CARD_COMMAND = "tier-router card --model models/default --report reports/default/report.json"


def write_card(model_dir: Path, report_path: Path) -> Path:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    report = json.loads(report_path.read_text())
    text = "\n".join([
        f"# Model card: {metadata['router_version']}",
        "",
        _overview(metadata),
        _data(metadata),
        _selection(metadata),
        "## Results on the test splits (never trained on)",
        "",
        _table(report, "in-dist"),
        "",
        "## Results across data sets (leave one data set out)",
        "",
        "Trained on every other data set's training split, evaluated on the held-out one's "
        "test split. This is what traffic unlike the training data does to the router.",
        "",
        _table(report, "lodo"),
        "",
        _default_point(report, metadata),
        _calibration(report),
        _ceiling(report),
        _reproduce(),
        _caveats(),
    ])
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text + "\n")
    return path


def _overview(meta: dict[str, Any]) -> str:
    emb = meta["embedder"]
    head = ", ".join(f"{k}={v}" for k, v in meta.get("head", {}).items())
    return (
        "## What it is\n\n"
        f"- Predicts, for each tier ({', '.join(meta['tiers'])}), the quality the tier's "
        "representative model is expected to give on a call (the share of such calls it "
        "answers well), on levels made comparable across tiers; `quality_target` is relative "
        "to the best tier's predicted quality.\n"
        f"- Encoder: {emb['name']} ({emb['dimension']}-d, package {emb['package']} "
        f"{emb['package_version']}); training embeddings from `{meta.get('embedder_backend')}`.\n"
        f"- Head: {head}; cheap numeric features: "
        f"{', '.join(meta['features']['numeric']) or 'none'}.\n"
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in meta['libraries'].items())}; "
        f"seed {meta.get('seed')}.\n"
        f"- head.joblib sha256: `{meta['head_sha256']}`\n"
    )


def _data(meta: dict[str, Any]) -> str:
    by_source = meta.get("training_prompts_by_source", {})
    rows = "\n".join(f"| {s} | {n} |" for s, n in sorted(by_source.items()))
    return (
        "## Training data\n\n"
        f"{meta.get('training_prompts')} prompts from the training splits of ../shared/data "
        "(files and sha256 in metadata.json). Tier labels: the outcome of each tier's "
        "representative model (first listed `training_models` in the config present on the "
        "prompt).\n\n| source | training prompts |\n|---|---|\n" + rows + "\n"
    )


def _selection(meta: dict[str, Any]) -> str:
    table = pd.DataFrame(meta.get("selection", []))
    if table.empty:
        return ""
    columns = ["apgr", "pair_apgr"] if "pair_apgr" in table else ["apgr"]
    means = table.groupby("candidate")[columns].mean().sort_values("apgr", ascending=False)
    lines = "\n".join(f"| {c} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
                      for c, row in zip(means.index, means.to_numpy(), strict=True))
    pair = " | mean pair APGR (raw weak-tier score)" if "pair_apgr" in table else ""
    return (
        "## Model selection\n\nBy mean leave-one-dataset-out APGR over the tier pairs of each "
        "held-out group, on the served knob's sweep (the ratio to the best tier, through the "
        "policy); the pair APGR with the weak tier's raw score as the knob beside it (training "
        "splits only; `selection.csv` has every group):\n\n"
        f"| candidate | mean LODO APGR (served policy){pair} |\n|---|---|"
        + ("---|" if pair else "") + "\n" + lines + "\n"
    )


def _table(report: dict[str, Any], scope: str) -> str:
    rows = [r for r in summary_rows(report) if r["scope"] == scope]
    if not rows:
        return "(not run)"
    frame = pd.DataFrame(rows).drop(columns=["scope"])
    frame = frame[frame["method"].isin(["router", "knn", "length", "random", "oracle"])]
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, *body])


def _default_point(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """Per source: what the shipped default does, relative to sending everything to the top."""
    knob = meta.get("quality_target", {})
    lines = [
        "## At the shipped default",
        "",
        f"quality_target {knob.get('default', '?')} ({knob.get('meaning', '?')}: "
        f"{knob.get('doc', '').rstrip('.')}). Quality and cost are relative to always using "
        "the strongest tier; shares are of calls per tier.",
        "",
        "| scope | source | " + " | ".join(f"share {t}" for t in meta["tiers"])
        + " | quality vs strongest | cost vs strongest |",
        "|" + "---|" * (4 + len(meta["tiers"])),
    ]
    for scope, key in (("in-dist", "in_distribution"), ("lodo", "lodo")):
        for source, section in (report.get(key) or {}).items():
            point = section.get("default_point")
            if not point:
                continue
            shares = " | ".join(_cell(point["share"].get(t)) for t in meta["tiers"])
            lines.append(f"| {scope} | {source} | {shares} | "
                         f"{_cell(point['quality_vs_strongest'])} | "
                         f"{_cell(point['cost_vs_strongest'])} |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return "" if value is None else str(value)


def _calibration(report: dict[str, Any]) -> str:
    pooled = report["in_distribution"]["all"]["calibration"]
    cells = " | ".join(f"{t} {c['ece']:.3f}" for t, c in pooled.items())
    return f"## Calibration\n\nExpected calibration error on the pooled test splits: {cells}.\n"


def _ceiling(report: dict[str, Any]) -> str:
    """The router's APGR beside routers that knew other LLMs' real outcomes on each prompt."""
    ceiling = report.get("ceiling")
    if not ceiling or not ceiling["pairs"]:
        return ""
    source = ceiling["source"]
    lines = [
        "## How far prompt-only routing can go",
        "",
        f"On {source}'s test split every prompt was also answered by other LLMs. Routing by "
        "their *real* outcomes on that very prompt (their mean, or a logistic regression on "
        "them fitted on the train split) is far more than a prompt embedding can know, so it "
        "is a practical ceiling for a prompt-only router. Beside it: knowing only the "
        "sub-benchmark. APGR with 95% bootstrap intervals "
        "(`python -m training.ceiling --data-dir ../shared/data`).",
        "",
        "| pair | scope | prompts | this router | other LLMs' outcomes (mean) | "
        "(fitted) | sub-benchmark only |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair, entry in ceiling["pairs"].items():
        for row in entry["rows"]:
            scope = source if row["scope"] == "pooled" else row["scope"]
            ours = (report["in_distribution"].get(scope, {}).get("pairs", {}).get(pair, {})
                    .get("methods", {}).get("router", {}))
            cells = [_with_ci(ours.get("apgr"), ours.get("apgr_ci"))] + [
                _with_ci(row[name], row[f"{name} CI"]) for name in (
                    "outcomes of the other models (mean)",
                    "outcomes of the other models (fitted)", "sub-benchmark only")
            ]
            lines.append(f"| {pair} ({entry['weak_model']} vs {entry['strong_model']}) | "
                         f"{scope} | {row['prompts']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _reproduce() -> str:
    return (
        "## Reproduce\n\n```bash\n"
        f".venv/bin/{TRAIN_COMMAND}\n.venv/bin/{EVAL_COMMAND}\n.venv/bin/{CARD_COMMAND}\n```\n"
    )


def _caveats() -> str:
    return (
        "## Honest caveats\n\n"
        "- In-distribution numbers are far better than cross-data-set ones; expect the latter "
        "on traffic unlike the public benchmarks.\n"
        "- Calibration fitted on benchmark prompts does not carry to other domains: watch the "
        "realised-versus-target table (and the drift metrics) before trusting the knob.\n"
        "- The cost axis uses today's configured prices and estimated tokens, not the costs "
        "recorded in the data sets.\n"
    )
