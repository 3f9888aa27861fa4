"""One small `train` run followed with `sys.setprofile`: the project modules it enters.

The traces are synthetic, written here in the TRACES.md format ('prove'/'theorem' prompts fail
on the small and medium tiers, every other prompt succeeds everywhere), and the encoder is the
fake one of tests/conftest.py, so the run takes seconds and the path, not the model, is what
is measured. Left out, as every path touches them: `__init__.py`,
router/errors.py and the router/config and
router/schemas packages. The config is loaded before the run,
as the CLI does before it calls `training.train.train`.

The test prints them (`pytest -s`): a map of the run, each module a step it cannot skip. No
count is asserted: what matters is that each step is in the one place a reader would look.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from router.config import Settings, load_settings
from tests.conftest import EASY, HARD, FakeEmbedder
from training.train import train

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = {"router/errors.py"}
SHARED_PACKAGES = ("router/schemas/", "router/config/")


def write_synthetic_traces(path: Path, settings: Settings, n: int = 200, seed: int = 0) -> Path:
    """`n` synthetic prompts, each tried on every tier's first training model, two sources."""
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            hard = i % 3 == 0
            prompt = f"{rng.choice(HARD if hard else EASY)} case {i}"
            for t, tier in enumerate(settings.tiers):
                good = not hard or t == len(settings.tiers) - 1
                fh.write(json.dumps({"prompt": prompt, "model": tier.training_models[0],
                                     "success": bool(good),
                                     "source": "synthetic/a" if i % 2 else "synthetic/b"})
                         + "\n")
    return path


def modules_entered(run: Callable[[], Any]) -> list[str]:
    """The project files (under router/ or training/) whose code `run` calls, in any thread."""
    files: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            files.add(frame.f_code.co_filename)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    inside = []
    for name in files:
        path = Path(name)
        if not path.is_relative_to(ROOT):
            continue
        relative = path.relative_to(ROOT).as_posix()
        if relative.split("/")[0] in ("router", "training") and path.name != "__init__.py" \
                and relative not in LEFT_OUT and not relative.startswith(SHARED_PACKAGES):
            inside.append(relative)
    return sorted(inside)


def test_a_small_train_run_is_traced_through_its_steps(tmp_path: Path) -> None:
    settings = load_settings(None)
    traces = write_synthetic_traces(tmp_path / "traces.jsonl", settings)
    out = tmp_path / "model"
    with threadpool_limits(1):  # small matrices: BLAS threads only fight each other here
        modules = modules_entered(lambda: train(
            settings=settings, out=out, cache_dir=tmp_path / "cache", traces=[traces], seed=0,
            embedder=FakeEmbedder(), selection_groups=("synthetic/a", "synthetic/b"),
        ))
    print(f"\n{len(modules)} project modules entered by one train run:\n  "
          + "\n  ".join(modules))
    assert (out / "metadata.json").is_file() and (out / "selection.csv").is_file()
    assert "training/train.py" in modules and "router/decision/artifact.py" in modules
