"""Shared fixtures. The fake embedder and the synthetic model here are for unit/API tests only:
their labels are made up (synthetic), so they say nothing about routing quality."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from router.config import Settings, StoreConfig, load_settings
from router.decision.artifact import save_model
from router.decision.features import FeatureSpec
from router.decision.quality_head import TierQualityRouter
from tests import redis_server
from tests.pg_server import PostgresServer, start_server, why_unavailable


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis (under schemathesis) keeps a cache in ./.hypothesis: keep it in a temp dir."""
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="tier-router-hypothesis-"))


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DIM = 384
# What a TestClient request comes from when it must be a loopback client (an open service's
# admin endpoints answer only those), and the header every POST needs, bodyless ones too.
LOOPBACK = ("127.0.0.1", 50000)
JSON = {"Content-Type": "application/json"}
BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str) -> ModuleType:
    """A script of bench/ (not a package: its scripts import each other by file name)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FakeEmbedder:
    """Deterministic bag-of-words hashing into 384 dims; 'hard' words push one direction."""

    name = "fake"
    dimension = DIM

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[i, h % DIM] += 1.0
            if "prove" in text.lower() or "theorem" in text.lower():
                out[i, 0] += 5.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class BrokenEmbedder(FakeEmbedder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("encoder exploded")


EASY = ["what is two plus two", "say hello", "name a colour", "list three fruits"]
HARD = ["prove the theorem about primes", "prove this theorem rigorously", "theorem proof now"]


def synthetic_model(path: Path) -> Path:
    """The shipped kind of head (a TierQualityRouter) on synthetic labels:
    'prove'/'theorem' prompts need the large tier."""
    rng = np.random.default_rng(0)
    texts = [rng.choice(EASY) + f" {i}" for i in range(60)] + [
        rng.choice(HARD) + f" {i}" for i in range(60)
    ]
    X = FakeEmbedder().encode(texts)
    hard = np.array([0] * 60 + [1] * 60)
    Y = np.stack([1.0 - hard, 1.0 - 0.7 * hard, np.full(120, 0.95)], axis=1)
    Y[:, 2] = np.where(rng.random(120) < 0.95, 1.0, 0.0)
    head = TierQualityRouter(tiers=("small", "medium", "large"), **SYNTHETIC_HEAD).fit(X, Y)
    return save_model(path, head, FeatureSpec(), router_version="synthetic-test",
                      head={"name": "tqr", "head": "tqr", **SYNTHETIC_HEAD})


# The shipped recipe (models/default) but for C and n_clusters (120 synthetic rows, not 5,000)
# and without the out-of-distribution guard: the live-server tests feed this head the real
# encoder's vectors, which the guard rightly finds unlike the fake ones it was fitted on (it
# would send every call to the pooled levels, the large tier). The guard has its unit tests.
SYNTHETIC_HEAD = {"C": 1.0, "anchor_levels": True, "n_clusters": 8, "ood_low": None,
                  "ood_high": None}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_model(tmp_path_factory.mktemp("model") / "synthetic")


@pytest.fixture
def settings(model_dir: Path, tmp_path: Path) -> Settings:
    """The shipped config on the synthetic model, with a trace store of its own per test, and
    exploration off (the shipped 0.1 would make exact-tier assertions random) and the draw
    seeded (the learned map's allowance draws with exploration off too); the tests of
    exploration turn it on themselves. The synthetic model's scores decide a call with no
    learned category (`learning.prior_confidence: 0`) at a target of 0.9, so the tests of the
    plumbing see cheap tiers; the tests of the learned map and its cold rule
    (tests/api/test_learning.py) use the shipped learning config."""
    store = StoreConfig(url=f"sqlite:///{tmp_path / 'traces.db'}", flush_interval_ms=5)
    shipped = load_settings(None)
    learning = shipped.learning.model_copy(update={"prior_confidence": 0.0})
    return shipped.model_copy(update={"model_dir": model_dir, "store": store,
                                      "exploration_rate": 0.0, "exploration_seed": 0,
                                      "quality_target": 0.9,
                                      "learning": learning})


@pytest.fixture(scope="module")
def redis() -> Iterator[redis_server.RedisServer]:
    """A real redis-server for this test module (tests that stop it start it again), or a skip
    saying why there is none; each test keeps its own key prefix."""
    why = redis_server.why_unavailable()
    if why is not None:
        pytest.skip(f"Redis tests skipped: {why}")
    server = redis_server.start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test session, or a skip saying why there is none."""
    yield from own_postgres_server()


def own_postgres_server() -> Iterator[PostgresServer]:
    """Start a PostgreSQL server of one's own (or skip, saying why); stop it afterwards. The
    session's shared one must not be halted: an outage test takes one of these."""
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
