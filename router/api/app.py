"""The FastAPI app: built once per process, the model loaded in its lifespan, never at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from router.api.checks import RequestChecks
from router.api.docs import add_offline_docs
from router.api.errors import add_error_handlers
from router.api.middleware import BodySizeLimit, RequestTimeLimit
from router.api.openapi import configured_openapi
from router.api.routes import feedback, ops, route, runs, verify
from router.config import EmbedderConfig, Settings
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from router.serving.holder import ServiceHolder
from router.serving.prometheus import Metrics

log = logging.getLogger(__name__)


def create_app(
    config_path: Path | None = None,
    settings: Settings | None = None,
    embedder_factory: Callable[[EmbedderConfig], Embedder] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> FastAPI:
    """Build the app; the model loads in the lifespan, never at import. `overrides`: top-level
    settings the command line sets over the file's, kept across reloads."""
    metrics = Metrics()
    holder = ServiceHolder(config_path, metrics, settings, embedder_factory or make_embedder,
                           overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(holder.start)
        _install_sighup(holder)
        holder.batcher.start()
        # The ~150k objects of the loaded libraries and model never die; the cyclic GC's full
        # collections walked them all (60-200 ms, a stall of every queued /route call: the c8
        # p99). Frozen, they are never scanned again: full collections take well under 1 ms.
        gc.freeze()
        yield
        await holder.batcher.stop()  # queued /route calls are answered before the store closes
        holder.stop()
        gc.unfreeze()  # back to collectable (several apps in one process: the tests)

    app = FastAPI(title="tier-router", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # served from the package: api/docs.py
    app.state.holder = holder
    app.state.metrics = metrics
    app.openapi = configured_openapi(app, holder)  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimit, holder=holder)
    app.add_middleware(RequestTimeLimit, holder=holder,
                       on_timeout=metrics.errors.labels("timeout").inc)
    app.add_middleware(RequestChecks, holder=holder)  # outermost: the cheapest refusals first
    add_error_handlers(app, metrics)
    for module in (route, feedback, ops, runs, verify):
        app.include_router(module.router)
    add_offline_docs(app)
    return app


def _install_sighup(holder: ServiceHolder) -> None:
    """SIGHUP reloads config and model, like POST /admin/reload (main thread only)."""
    try:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGHUP, lambda: loop.run_in_executor(None, holder.reload_quietly)
        )
    except (NotImplementedError, RuntimeError, ValueError):
        log.info("SIGHUP reload not available in this process")
