"""Building the one serving `RouterService`, complete, and swapping it atomically on reload.

Everything a service needs is put together in `_build`, in one place: the config, the model
(verified), the embedder (reused when its config did not change), and the state objects that
outlive a reload (the closed loop's store, spend and drift; the key ring's rate windows; the
/feedback service), each built once at `start` on its backend (this process, or Redis with
``shared_state``): one set of counters holds the per-minute limits and budget spend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from router.config import EmbedderConfig, Settings, load_settings
from router.decision.artifact import RouterModel, check_model_fits, load_model
from router.decision.encoders.backends import make_embedder
from router.decision.encoders.base import Embedder
from router.decision.encoders.cache import CachedEmbedder
from router.errors import ConfigError, RouterError, ServiceNotStarted
from router.guards.auth import KeyRing
from router.guards.gate import Gate
from router.guards.shared import SharedCounters
from router.serving.batcher import MicroBatcher
from router.serving.closed_loop import ClosedLoop
from router.serving.escalation import EscalationService
from router.serving.feedback import FeedbackService
from router.serving.logs import DecisionLog, adopt_library_loggers
from router.serving.prometheus import Metrics
from router.serving.service import RouterService
from router.serving.verify import VerifyService
from router.traces.escalations import EscalationRecords
from router.traces.verifications import VerificationRecords

log = logging.getLogger(__name__)


class ServiceHolder:
    """Owns the current RouterService; `reload` builds a new one and swaps it in, or refuses."""

    def __init__(
        self,
        config_path: Path | None,
        metrics: Metrics,
        settings: Settings | None = None,
        embedder_factory: Callable[[EmbedderConfig], Embedder] = make_embedder,
    ):
        self.config_path = config_path
        self.metrics = metrics
        self.embedder_factory = embedder_factory
        self._initial = settings
        self._lock = threading.Lock()
        # The service serving now: a plain attribute, read by every request (None until start).
        self.current: RouterService | None = None
        self.loop: ClosedLoop | None = None
        self.feedback: FeedbackService | None = None  # the /feedback path, built with the loop
        self.escalations: EscalationService | None = None  # /route's escalate_from path
        self.verify: VerifyService | None = None  # POST /verify
        # /route calls are batched against whichever service is current when a batch runs.
        self.batcher = MicroBatcher(self)
        self.keyring = KeyRing()  # rate windows: state that outlives a reload
        self.shared: SharedCounters | None = None  # Redis, when the config has shared_state

    @property
    def service(self) -> RouterService:
        if self.current is None:
            raise ServiceNotStarted("the service has not started")
        return self.current

    @property
    def settings(self) -> Settings:
        if self.current is not None:
            return self.current.settings
        if self._initial is None:
            raise ServiceNotStarted("the service has not started: no settings loaded yet")
        return self._initial

    def start(self) -> None:
        """First load. A bad model still starts the service (degraded or 503, per fail_open)."""
        settings = self._initial or load_settings(self.config_path)
        self._initial = settings
        if self.loop is None:
            if settings.shared_state is not None:  # read once, like the store's URL
                self.shared = SharedCounters(settings.shared_state)
                self.shared.register(self.metrics.registry)
                self.keyring = KeyRing(counters=self.shared)
            # one set of counters: the per-minute limits and budget spend, read in one take
            loop = self.loop = ClosedLoop(settings, self.metrics.registry, self.shared,
                                          self.keyring.counters)
            records = EscalationRecords(loop.store) if loop.store is not None else None
            self.feedback = FeedbackService(loop.store, loop.health, loop.budgets, loop.runs,
                                            loop.drift, loop.learn, loop.metrics, records,
                                            check=loop.check)
            self.escalations = EscalationService(self.feedback, records)
            self.verify = VerifyService(self.escalations, VerificationRecords(loop.store)
                                        if loop.store is not None else None)
            loop.start()
        try:
            service = self._build(settings, previous=None)
        except RouterError as exc:
            log.error("model not loaded: %s", exc, extra={
                "event": "model_load", "outcome": "failed", "model_dir": str(settings.model_dir),
                "reason": str(exc)})
            service = self._assemble(settings, None, None, load_error=str(exc))
        self._swap(service)
        adopt_library_loggers()  # libraries that set up their own logging while loading

    def reload(self, trigger: str = "api") -> RouterService:
        """Re-read the config file and the model; a bad new one is refused, the old one serves.

        `trigger` (api, sighup) is only for the log line each reload leaves, either way."""
        with self._lock:
            previous = self.current.version if self.current is not None else None
            try:
                settings = load_settings(self.config_path) if self.config_path else self.settings
                service = self._build(settings, previous=self.current)
            except RouterError as exc:
                self.metrics.reloads.labels("refused").inc()
                log.error("reload refused, the previous model keeps serving: %s", exc, extra={
                    "event": "reload", "outcome": "refused", "trigger": trigger,
                    "reason": str(exc), "router_version": previous})
                raise ConfigError(
                    f"reload refused, the previous model keeps serving: {exc}"
                ) from exc
            self._swap(service)
            self.metrics.reloads.labels("ok").inc()
            log.info("reload accepted: %s serving", service.version, extra={
                "event": "reload", "outcome": "ok", "trigger": trigger,
                "router_version": service.version, "previous_version": previous})
            return service

    def reload_quietly(self) -> None:
        """The SIGHUP reload: refused or not, the log line says so; nothing to answer."""
        log.info("SIGHUP received: reloading", extra={"event": "sighup"})
        try:
            self.reload(trigger="sighup")
        except RouterError:
            pass  # reload() logged why it was refused

    def stop(self) -> None:
        """Flush the trace store's queue and close it (graceful shutdown loses nothing)."""
        if self.loop is not None:
            self.loop.close()
        log.info("shut down: trace store flushed and closed", extra={"event": "shutdown"})

    def refresh_gauges(self) -> None:
        service = self.current
        if service is None:
            return
        self.metrics.model_loaded.set(1.0 if service.ready else 0.0)
        if isinstance(service.embedder, CachedEmbedder):
            self.metrics.cache_hit_rate.set(service.embedder.hit_rate)

    def _build(self, settings: Settings, previous: RouterService | None) -> RouterService:
        started = time.perf_counter()
        model = load_model(settings.model_dir)
        check_model_fits(settings, model)
        if previous is not None and previous.embedder is not None and (
            previous.settings.embedder == settings.embedder
        ):
            embedder, reused = previous.embedder, True
        else:
            embedder, reused = self.embedder_factory(settings.embedder), False
        service = self._assemble(settings, model, embedder)
        log.info("model loaded: %s", model.version, extra={
            "event": "model_load", "outcome": "ok", "router_version": model.version,
            "model_dir": str(settings.model_dir), "backend": settings.embedder.backend,
            "embedder_reused": reused, "load_s": round(time.perf_counter() - started, 3)})
        return service

    def _assemble(
        self, settings: Settings, model: RouterModel | None, embedder: Embedder | None,
        load_error: str | None = None,
    ) -> RouterService:
        """The service and its state objects, put together once; the loop follows `settings`."""
        loop = self.loop
        assert loop is not None, "start() creates the loop before any service is built"
        loop.configure(settings)
        return RouterService(
            settings, model, embedder, load_error=load_error,
            recorders=(loop, DecisionLog(settings)),
            budgets=loop.budgets if settings.budgets else None,
            explorer=loop.explorer(settings),
            health=loop.health if settings.health.enabled else None,
            runs=loop.runs.state,
            learning=(loop.learning_for(settings, embedder.dimension, model.centroids,
                                        model.cluster_cut)
                      if embedder is not None and model is not None else None),
            gate=(Gate(settings.auth.keys, loop.budgets if settings.budgets else None,
                       self.keyring.counters, clock=self.keyring.clock)
                  if settings.budgets or any(k.tokens_per_minute or k.rate_per_minute
                                             for k in settings.auth.keys)
                  else None),
        )

    def _swap(self, service: RouterService) -> None:
        self.current = service
        self.metrics.model_loaded.set(1.0 if service.ready else 0.0)
        self.metrics.zero_series(service.settings, self.loop.metrics if self.loop else None)
