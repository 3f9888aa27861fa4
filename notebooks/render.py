"""Re-execute quality_cost.ipynb on the shipped model's evaluation report and save its outputs.

Run it whenever the shipped model changes (after `tier-router evaluate ... --out reports/default
--lodo` and `tier-router card`), so the committed notebook shows that model's curves on any
viewer without being run:

    .venv/bin/python notebooks/render.py [--report reports/default/report.json]

It refuses a report made by another model than the one in models/default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "quality_cost.ipynb"
ROOT = HERE.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "reports/default/report.json",
                        help="report.json of `tier-router evaluate` on the shipped model")
    parser.add_argument("--model", type=Path, default=ROOT / "models/default",
                        help="the shipped model directory the report must belong to")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"render: no report at {args.report}: run `tier-router evaluate` first",
              file=sys.stderr)
        return 2
    shipped = json.loads((args.model / "metadata.json").read_text())["router_version"]
    made_by = json.loads(args.report.read_text()).get("router_version")
    if made_by != shipped:
        print(f"render: {args.report} is of {made_by}, the shipped model is {shipped}",
              file=sys.stderr)
        return 2
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # relative to notebooks/ when it is the default report, so the output names no local path
    report = os.path.relpath(args.report.resolve(), HERE)
    os.environ["REPORT_JSON"] = report
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK} from {report} ({shipped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
