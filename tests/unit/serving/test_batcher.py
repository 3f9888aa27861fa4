"""MicroBatcher: concurrent /route calls share one encoder call; results and errors stay owned."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from router.config import EmbedderConfig, Settings
from router.decision.artifact import load_model
from router.errors import RequestLimitError, ServiceUnavailable
from router.schemas import RouteDecision, RouteRequest
from router.serving.batcher import MicroBatcher
from router.serving.service import RouterService
from tests.conftest import FakeEmbedder


class BoomEmbedder(FakeEmbedder):
    """Fails any call whose texts include 'boom', so one request can poison a batch."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any("boom" in t for t in texts):
            self.calls += 1
            raise RuntimeError("encoder exploded")
        return super().encode(texts)


def make_service(settings: Settings, model_dir: Path, embedder: FakeEmbedder,
                 **changes: object) -> RouterService:
    return RouterService(settings.model_copy(update=changes), load_model(model_dir), embedder)


class Source:
    """Stands in for the holder: the current service, swappable by the test."""

    def __init__(self, service: RouterService, config: EmbedderConfig | None = None):
        self.current = service if config is None else with_config(service, config)


def with_config(service: RouterService, config: EmbedderConfig) -> RouterService:
    settings = service.settings.model_copy(update={"embedder": config})
    return RouterService(settings, service.model, service.embedder)


def run_batched(
    service: RouterService | list[RouterService],
    requests: list[RouteRequest],
    config: EmbedderConfig | None = None,
) -> list[RouteDecision | BaseException]:
    """Start a batcher, send `requests` at once, stop it; each caller's result or exception."""
    current = service[0] if isinstance(service, list) else service

    async def main() -> list[RouteDecision | BaseException]:
        batcher = MicroBatcher(Source(current, config))
        batcher.start()
        results = await asyncio.gather(*(batcher.route(r) for r in requests),
                                       return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main())


def test_concurrent_calls_make_one_encoder_call(settings: Settings, model_dir: Path) -> None:
    embedder = FakeEmbedder()
    service = make_service(settings, model_dir, embedder)
    results = run_batched(service, [RouteRequest(prompt=f"say hello {i}") for i in range(20)])
    assert all(isinstance(r, RouteDecision) for r in results)
    assert embedder.calls == 1


def test_batches_are_cut_at_the_configured_size(settings: Settings, model_dir: Path) -> None:
    embedder = FakeEmbedder()
    service = make_service(settings, model_dir, embedder)
    requests = [RouteRequest(prompt=f"say hello {i}") for i in range(10)]
    run_batched(service, requests, EmbedderConfig(batch_size=4))
    assert embedder.calls == 3  # 4 + 4 + 2


def test_each_caller_gets_its_own_decision(settings: Settings, model_dir: Path) -> None:
    embedder = FakeEmbedder()
    service = make_service(settings, model_dir, embedder)
    tiers = ["small", "medium", "large"] * 4
    requests = [RouteRequest(prompt=f"question {i}", tier=t, run_id=f"r{i}")
                for i, t in enumerate(tiers)]
    results = run_batched(service, requests)
    assert [r.tier for r in results] == tiers  # type: ignore[union-attr]
    alone = [service.route([r])[0] for r in requests]
    assert [r.scores for r in results] == [a.scores for a in alone]  # type: ignore[union-attr]


def test_a_request_over_a_limit_fails_only_itself(settings: Settings, model_dir: Path) -> None:
    embedder = FakeEmbedder()
    service = make_service(settings, model_dir, embedder)
    requests = [RouteRequest(prompt="say hello"), RouteRequest(prompt="hi", tier="nope"),
                RouteRequest(prompt="name a colour")]
    results = run_batched(service, requests)
    assert isinstance(results[0], RouteDecision) and isinstance(results[2], RouteDecision)
    assert isinstance(results[1], RequestLimitError) and results[1].field == "tier"
    assert embedder.calls == 1  # the others still shared one encoder call


def test_an_encoder_failure_lands_only_on_its_owner(settings: Settings, model_dir: Path) -> None:
    embedder = BoomEmbedder()
    service = make_service(settings, model_dir, embedder, fail_open=False)
    requests = [RouteRequest(prompt="say hello"), RouteRequest(prompt="boom now"),
                RouteRequest(prompt="name a colour")]
    results = run_batched(service, requests)
    assert isinstance(results[1], ServiceUnavailable)
    assert isinstance(results[0], RouteDecision) and isinstance(results[2], RouteDecision)
    assert results[0].reason == results[2].reason == "classifier"


def test_stop_answers_every_queued_call_then_refuses(settings: Settings, model_dir: Path) -> None:
    service = make_service(settings, model_dir, FakeEmbedder())

    async def main() -> tuple[list[RouteDecision], BaseException | None]:
        batcher = MicroBatcher(Source(service, EmbedderConfig(batch_size=3)))
        batcher.start()
        calls = [asyncio.ensure_future(batcher.route(RouteRequest(prompt=f"hi {i}")))
                 for i in range(10)]
        await asyncio.sleep(0)  # all ten are queued
        await batcher.stop()
        assert all(c.done() for c in calls)
        try:
            await batcher.route(RouteRequest(prompt="too late"))
        except ServiceUnavailable as exc:
            return [c.result() for c in calls], exc
        return [c.result() for c in calls], None

    decisions, refused = asyncio.run(main())
    assert len(decisions) == 10 and refused is not None


def test_a_swapped_service_serves_the_next_batch(settings: Settings, model_dir: Path) -> None:
    old = make_service(settings, model_dir, FakeEmbedder())
    new = make_service(settings, model_dir, FakeEmbedder(), quality_target=0.0)
    source = Source(old)

    async def main() -> tuple[RouteDecision, RouteDecision]:
        batcher = MicroBatcher(source)
        batcher.start()
        first = await batcher.route(RouteRequest(prompt="prove the theorem about primes"))
        source.current = new
        second = await batcher.route(RouteRequest(prompt="prove the theorem about primes"))
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert first.tier != "small" and second.tier == "small"


def test_stragglers_are_gathered_within_the_wait(settings: Settings, model_dir: Path) -> None:
    embedder = FakeEmbedder()
    service = make_service(settings, model_dir, embedder)

    async def main() -> None:
        batcher = MicroBatcher(Source(service, EmbedderConfig(batch_wait_ms=100)))
        batcher.start()
        await asyncio.gather(*(batcher.route(RouteRequest(prompt=f"a {i}")) for i in range(3)))
        assert embedder.calls == 1  # three concurrent callers: the next batch waits for three

        async def late(i: int) -> RouteDecision:
            for _ in range(10 * i):  # arrives 10 turns of the event loop after the one before
                await asyncio.sleep(0)
            return await batcher.route(RouteRequest(prompt=f"b {i}"))

        await asyncio.gather(*(late(i) for i in range(3)))
        assert embedder.calls == 2
        await batcher.stop()

    asyncio.run(main())


def test_the_wait_ends_when_the_last_rounds_callers_are_back(
    settings: Settings, model_dir: Path
) -> None:
    service = make_service(settings, model_dir, FakeEmbedder())

    async def main() -> float:
        batcher = MicroBatcher(Source(service, EmbedderConfig(batch_wait_ms=100)))
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):  # two callers, three rounds: no round waits for a third caller
            await asyncio.gather(*(batcher.route(RouteRequest(prompt=f"c {i}")) for i in range(2)))
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    assert asyncio.run(main()) < 0.15


def test_a_lone_caller_does_not_wait(settings: Settings, model_dir: Path) -> None:
    service = make_service(settings, model_dir, FakeEmbedder())

    async def main() -> float:
        batcher = MicroBatcher(Source(service, EmbedderConfig(batch_wait_ms=100)))
        batcher.start()
        loop = asyncio.get_running_loop()
        await batcher.route(RouteRequest(prompt="warm up"))
        started = loop.time()
        for i in range(3):
            await batcher.route(RouteRequest(prompt=f"one at a time {i}"))
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    assert asyncio.run(main()) < 0.2  # three sequential calls, none paid the 100 ms wait


def test_not_started_refuses(settings: Settings, model_dir: Path) -> None:
    service = make_service(settings, model_dir, FakeEmbedder())
    batcher = MicroBatcher(Source(service))
    with pytest.raises(ServiceUnavailable):
        asyncio.run(batcher.route(RouteRequest(prompt="hi")))


def test_a_failure_outside_the_service_fails_its_callers_not_the_batcher(
    settings: Settings, model_dir: Path
) -> None:
    service = make_service(settings, model_dir, FakeEmbedder())

    class BrokenOnce:
        broken = True

        @property
        def current(self) -> RouterService:
            if self.broken:
                self.broken = False
                raise RuntimeError("holder unreadable")
            return service

    async def main() -> tuple[BaseException | RouteDecision, RouteDecision]:
        batcher = MicroBatcher(BrokenOnce())
        batcher.start()
        first = (await asyncio.gather(batcher.route(RouteRequest(prompt="a")),
                                      return_exceptions=True))[0]
        second = await batcher.route(RouteRequest(prompt="b"))
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert isinstance(first, ServiceUnavailable) and isinstance(second, RouteDecision)
