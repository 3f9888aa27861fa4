"""notebooks/quality_cost.ipynb runs top to bottom on a report made here from synthetic data.

The report comes from `training.evaluate.evaluate` on synthetic traces with a hash-seeded
fake embedder and a tiny saved model, plus a leave-one-dataset-out section from
`training.evaluate.lodo_report` on synthetic groups (see `tests.training.synthetic_eval`), so
the notebook meets both scopes without the real encoder or the public data.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient

import training.evaluate as evaluate
from router.config import load_settings
from tests.training.synthetic_eval import (
    FakeEmbedder,
    evaluate_kwargs,
    save_tiny_model,
    synthetic_outcomes,
    synthetic_table,
    write_traces,
)
from training.ceiling import ceiling_report, outcome_matrix
from training.embed_cache import Featurised
from training.outputs import json_ready, summary_rows
from training.selection import Candidate

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quality_cost.ipynb"


def _lodo_section() -> dict:
    n = 180
    table, views = synthetic_table(n, seed=9)
    table.prompts["source"] = np.array(["routerbench/mbpp", "alpacaeval"])[np.arange(n) % 2]
    table.prompts["split"] = np.where(np.arange(n) % 3 == 0, "test", "train")
    data = Featurised(table, FakeEmbedder().encode([v.text for v in views]),
                      np.zeros((n, 6), np.float32))
    candidate = Candidate("logreg", {"head": "logreg", "C": 0.05, "calibration": None})
    return evaluate.lodo_report(data, views, load_settings(), candidate, seed=0, n_boot=10)


def _write_report(tmp_path: Path) -> Path:
    model = save_tiny_model(tmp_path / "model")
    traces = write_traces(tmp_path / "traces.jsonl", 160)
    out = tmp_path / "report"
    evaluate.evaluate(**evaluate_kwargs(model, traces, out, tmp_path / "cache"))
    report = json.loads((out / "report.json").read_text())
    report["lodo"] = json_ready(_lodo_section())
    quality, meta = outcome_matrix(synthetic_outcomes(200))  # synthetic, like the rest here
    report["ceiling"] = {"source": "synth", "pairs": {"small/large": {
        "weak_model": "weak", "strong_model": "strong",
        "rows": ceiling_report(quality, meta, "weak", "strong", n_boot=10)}}}
    report["summary"] = summary_rows(report)
    (out / "report.json").write_text(json.dumps(json_ready(report)))
    return out / "report.json"


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def test_the_committed_notebook_shows_the_shipped_model_before_it_is_run():
    """Its saved outputs are those of the shipped model's report (notebooks/render.py)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    shipped = json.loads((NOTEBOOK.parents[1] / "models" / "default" / "metadata.json")
                         .read_text())["router_version"]
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs for cell in code), "every code cell keeps its output"
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= 2
    assert f"({shipped})" in outputs[0]["text"]  # the report line names the shipped model
    assert "operating point (quality_target" in json.dumps([c.source for c in code])


def test_notebook_runs_on_a_small_report(tmp_path, monkeypatch):
    report = _write_report(tmp_path)
    monkeypatch.setenv("REPORT_JSON", str(report))
    committed = NOTEBOOK.read_bytes()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    assert NOTEBOOK.read_bytes() == committed  # executed in memory: the saved outputs stay
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the curves and the reliability diagram
    text = json.dumps([o.get("text", "") for o in outputs])
    assert "tiny-test-model" in text
    tables = json.dumps([o.get("data", {}).get("text/plain", "") for o in outputs])
    assert "others' outcomes (fitted)" in tables  # the ceiling table was drawn
