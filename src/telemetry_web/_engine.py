"""The :class:`Telemetry` object: one entry point that owns metrics, tracing, logging and health.

Adapters hold a Telemetry and call its :class:`~telemetry_web._lifecycle.RequestLifecycle`;
everything they need (built-in endpoints, excluded paths) is decided here, once, not per request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from structlog.typing import FilteringBoundLogger

from . import __version__
from . import semconv as sc
from ._parts import (
    Endpoint,
    build_exposition,
    build_log_pipeline,
    build_log_sinks,
    build_metric_outputs,
    build_request_lifecycle,
    build_routes,
    drop_counters,
    install_stdlib_bridge,
    reject_unbuilt,
    replace_section,
    values_are_shared,
)
from ._shutdown import LIVE, close_at_exit, flush_parts, stop_parts
from .config import (
    HealthSettings,
    LoggingSettings,
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
    load_settings,
)
from .config._model import GatewaySettings
from .errors import ConfigError
from .gateway._policy import http_metrics_for
from .health import Health
from .logging._context import bind_context
from .logging._levels import LevelTable, level_number
from .logging._loggers import StdlibBridge, TelemetryLogger, make_logger
from .logging._pipeline import LogPipeline
from .logging._sinks import LogSink
from .mesh._profiles import effective_settings
from .mesh._proxy import build_extractor
from .metrics._exposition import MetricsEndpoint
from .metrics._http import HttpMetrics
from .metrics._multiprocess import ProcessMetrics, multiprocess_dir
from .metrics._registry import Metric, MetricBuilder, MetricSet
from .tracing._api import TelemetryTracer
from .tracing._global import install_global_provider
from .tracing._propagation import Extractor
from .tracing._provider import TelemetryTracerProvider, build_tracer_provider
from .tracing._span import SpanFactory

__all__ = ["Endpoint", "Telemetry", "default_telemetry"]

_F = TypeVar("_F", bound=Callable[..., Any])
_LIVE = LIVE  # every live Telemetry; the launcher reads it here (_launcher/_bootstrap.py)


class Telemetry:
    """Request spans, RED metrics, structured logs and health endpoints for one service.

    Args:
        config: a YAML path, a mapping shaped like the configuration file, or
            :class:`~telemetry_web.config.TelemetrySettings`; ``$TELEMETRY_CONFIG`` when omitted.
        service, environment, labels: the most common top-level keys, over ``config``.
        span_exporters: extra OpenTelemetry span exporters, each behind a bounded batch queue.
        log_sinks: extra log sinks (objects with ``write(events)``), next to the configured ones.
        use_env: read ``TELEMETRY_*`` and ``OTEL_*`` variables (they win over code).
        set_global: route the global OpenTelemetry tracer provider and propagator here, so
            ``trace.get_tracer(__name__)`` anywhere in the app joins the request's trace.
        capture_stdlib_logging: send records of the standard ``logging`` module through the
            same pipeline (a handler on the root logger).

    Raises:
        ConfigError: for invalid configuration, naming each key path, value and expectation.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | TelemetrySettings | None = None,
        *,
        service: str | None = None,
        environment: str | None = None,
        labels: Mapping[str, str] | None = None,
        span_exporters: Sequence[SpanExporter] = (),
        log_sinks: Sequence[LogSink] = (),
        use_env: bool = True,
        set_global: bool = True,
        capture_stdlib_logging: bool = True,
    ) -> None:
        settings = load_settings(
            config, use_env=use_env, service=service, environment=environment,
            labels=dict(labels) if labels is not None else None,
        )  # fmt: skip
        reject_unbuilt(settings)
        self.settings = settings
        self._span_exporters = list(span_exporters)
        self._log_sinks = list(log_sinks)
        self._set_global = set_global
        self._capture_stdlib = capture_stdlib_logging
        self._lock = threading.RLock()
        self._closed = False
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = MetricSet(
            self.registry,
            {sc.LABEL_SERVICE: settings.service, sc.LABEL_ENVIRONMENT: settings.environment,
             **settings.labels},
        )  # fmt: skip
        self._spans_dropped, self._logs_dropped, self._metrics_dropped = drop_counters(self.metrics)
        self._metric_outputs: list[Any] = []  # metrics.outputs.PushOutput, one per exporter
        self.http_metrics: HttpMetrics | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self._metrics_server: Any = None
        self._process_metrics: ProcessMetrics | None = None
        self._metric_history: Any = None  # store.MetricSnapshotter, when the store keeps one
        self._alerting: Any = None  # alerting.AlertEvaluator (embedded alerting), when on
        self.tracer_provider: TelemetryTracerProvider | None = None
        self.tracer: trace.Tracer | None = None
        self.span_factory: SpanFactory | None = None
        self.extractor = Extractor(settings.tracing.propagation, settings.tracing.trust)
        self.pipeline: LogPipeline | None = None
        self._bridge: StdlibBridge | None = None
        # Shared by every logger get_logger() made: they follow level changes without rebuilding.
        self.log_levels = LevelTable(settings.logging.level, settings.logging.levels)
        self.health = Health(settings.service, metrics=self.metrics, logger=self._health_logger)
        try:
            self.configure_metrics()
            self.configure_tracing()
            self.configure_logging()
            self.configure_health()
            self._configure_alerting()
        except BaseException:
            # A part that cannot be built (a missing extra, a port in use): the parts already
            # running (the metrics server, the metric history, queues' threads) stop before the
            # error reaches the caller, instead of running on in an object nobody holds.
            self.shutdown(timeout=1.0)
            raise
        close_at_exit(self)

    # --- configuration ------------------------------------------------------------------------

    def configure_metrics(self, section: MetricsSettings | Mapping[str, Any] | None = None) -> None:
        """(Re)build the HTTP metrics and the ``/metrics`` endpoint from ``metrics``."""
        with self._lock:
            settings = self._replace("metrics", section, MetricsSettings)
            shared_dir = multiprocess_dir() if values_are_shared() else None
            self.http_metrics = (
                http_metrics_for(
                    self.metrics, settings, self.settings.gateway, exemplars=shared_dir is None
                )
                if settings.enabled
                else None
            )
            if self._metrics_server is not None:  # before a new one binds the port
                self._metrics_server.shutdown()
                self._metrics_server = None
            self.metrics_endpoint, self._metrics_server, self._process_metrics = (
                build_exposition(
                    settings, self.metrics, shared_dir=shared_dir,
                    process_metrics=self._process_metrics,
                )
            )  # fmt: skip
            self._configure_metric_history(shared_dir)
            old, self._metric_outputs = self._metric_outputs, []
            for output in old:
                output.shutdown(1.0)
            self._metric_outputs = build_metric_outputs(
                self.settings, self.metrics, dropped=self._metrics_dropped,
                shared_dir=shared_dir, process_metrics=self._process_metrics,
            )  # fmt: skip
            self._rebuild_lifecycle()

    def _configure_metric_history(self, shared_dir: str | None) -> None:
        """Snapshots of every family in the store, when no metric backend is configured."""
        from .store import metric_history

        old, self._metric_history = self._metric_history, None
        if old is not None:
            old.stop()
        self._metric_history = metric_history(
            self.settings, self.registry, multiprocess_dir=shared_dir, metrics=self.metrics
        )

    def _configure_alerting(self) -> None:
        """Embedded alerting (one evaluating process per host) over the store and health."""
        from .alerting._evaluator import embedded_alerting

        shared_dir = multiprocess_dir() if values_are_shared() else None
        self._alerting = embedded_alerting(
            self.settings, metrics=self.metrics, health=self.health,
            log=self._alert_log, multiprocess_dir=shared_dir,
        )  # fmt: skip

    def _alert_log(self, level: str, event: str, **fields: Any) -> None:
        getattr(self.get_logger("telemetry_web.alerting"), level)(event, **fields)

    def configure_tracing(self, section: TracingSettings | Mapping[str, Any] | None = None) -> None:
        """(Re)build the tracer provider, sampler, exporters and propagators from ``tracing``."""
        with self._lock:
            settings = self._replace("tracing", section, TracingSettings)
            old = self.tracer_provider
            # A `mesh:` section brings its propagation order and honours the sidecar's sampling.
            effective = effective_settings(self.settings)
            self.extractor = build_extractor(effective)
            if settings.enabled:
                provider = build_tracer_provider(
                    effective, self._span_exporters, self._spans_dropped
                )
                self.tracer_provider = provider
                self.tracer = provider.get_tracer("telemetry_web", __version__)
                self.span_factory = SpanFactory(provider, "telemetry_web", __version__)
                if self._set_global:
                    install_global_provider(provider)
                    propagate.set_global_textmap(self.extractor.propagator)
            else:
                self.tracer_provider = None
                self.tracer = None
                self.span_factory = None
            if old is not None:
                old.shutdown()
            self._rebuild_lifecycle()

    def configure_logging(self, section: LoggingSettings | Mapping[str, Any] | None = None) -> None:
        """(Re)build the log pipeline, its sinks and processors, and the stdlib bridge."""
        with self._lock:
            previous = self.settings
            settings = self._replace("logging", section, LoggingSettings)
            old = self.pipeline
            try:
                sinks = build_log_sinks(
                    self.settings, dropped=self._logs_dropped, extra=self._log_sinks
                )
            except ConfigError:
                self.settings = previous
                raise
            self.log_levels.configure(settings.level, settings.levels)
            self.pipeline = build_log_pipeline(self.settings, sinks, dropped=self._logs_dropped)
            if old is not None:
                old.shutdown()
            self._bridge = install_stdlib_bridge(
                self._bridge, self.pipeline, self.log_levels, capture=self._capture_stdlib
            )
            self._rebuild_lifecycle()

    def configure_gateway(self, section: GatewaySettings | Mapping[str, Any] | None = None) -> None:
        """(Re)apply ``gateway``: per-route sample rates, request logs and request metrics
        (the sampler, the HTTP metrics and the log filter are rebuilt)."""
        with self._lock:
            self._replace("gateway", section, GatewaySettings)
            self.configure_metrics()
            self.configure_tracing()
            self.configure_logging()

    def configure_health(self, section: HealthSettings | Mapping[str, Any] | None = None) -> None:
        """(Re)build the health checks and the liveness and readiness endpoints from ``health``
        (checks added in code stay)."""
        with self._lock:
            previous = self.settings
            settings = self._replace("health", section, HealthSettings)
            try:
                self.health.configure(settings)
            except BaseException:
                self.settings = previous
                raise
            self._rebuild_lifecycle()

    def _replace(self, name: str, section: Any, cls: type) -> Any:
        self.settings, section = replace_section(self.settings, name, section, cls)
        return section

    def _rebuild_lifecycle(self) -> None:
        if not hasattr(self, "health"):
            return  # still in __init__; the last configure_* call builds it
        s = effective_settings(self.settings)  # a `mesh:` section's headers and probe paths
        self.lifecycle = build_request_lifecycle(
            s, spans=self.span_factory, extractor=self.extractor,
            http_metrics=self.http_metrics, pipeline=self.pipeline,
        )  # fmt: skip
        prom = s.metrics.collectors.prometheus
        # /ready?verbose shows check targets and errors: behind the /metrics token when set
        self.health.verbose_token = prom.bearer_token if prom is not None else None
        routes = build_routes(
            s, self.health, self.metrics_endpoint, serves_own_port=self._metrics_server is not None
        )
        self.endpoints = routes.endpoints
        self.excluded_paths = routes.excluded_paths
        self.excluded_prefixes = routes.excluded_prefixes
        self.redacted_headers = routes.redacted_headers

    def is_excluded(self, path: str) -> bool:
        return path in self.excluded_paths or (
            bool(self.excluded_prefixes) and path.startswith(self.excluded_prefixes)
        )

    # --- the API for application code --------------------------------------------------------

    def create_counter(self, name: str) -> MetricBuilder:
        return self.metrics.builder("counter", name)

    def create_gauge(self, name: str) -> MetricBuilder:
        return self.metrics.builder("gauge", name)

    def create_histogram(self, name: str) -> MetricBuilder:
        return self.metrics.builder("histogram", name)

    def get_metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    def list_metrics(self) -> list[Metric]:
        return self.metrics.all()

    def get_tracer(self, name: str, version: str | None = None) -> TelemetryTracer:
        """A tracer for application code: ``start_span``, ``@tracer.span`` and ``with`` (see
        :mod:`telemetry_web.tracing._api`); it follows :meth:`configure_tracing`."""
        return TelemetryTracer(lambda: self.tracer_provider, name, version)

    def get_logger(self, name: str = "app") -> FilteringBoundLogger:
        """A structlog logger; its level follows ``logging.levels`` and :meth:`set_level`."""
        if self.pipeline is None:
            raise RuntimeError("telemetry has been shut down")
        logger: TelemetryLogger = make_logger(self._current_pipeline, name, self.log_levels)
        return logger

    def set_level(self, name: str | None, level: str | None) -> None:
        """Change the level of logger ``name`` and its dotted children at run time (``None``:
        the default level; level ``None``: remove ``name``'s own level). Loggers already made,
        standard ``logging`` ones included, follow at once.

        Raises:
            ValueError: ``level`` is not a level name.
        """
        with self._lock:
            current = self.settings.logging
            if not name:
                if level is None:
                    raise ValueError("the default level cannot be removed; give a level")
                level_number(level)
                updated = dataclasses.replace(current, level=typing.cast(Any, level.lower()))
            else:
                levels = dict(current.levels)
                if level is None:
                    levels.pop(name, None)
                else:
                    level_number(level)
                    levels[name] = typing.cast(Any, level.lower())
                updated = dataclasses.replace(current, levels=levels)
            self.settings = dataclasses.replace(self.settings, logging=updated)
            self.log_levels.configure(updated.level, updated.levels)
            if self._bridge is not None:
                self.log_levels.apply_to_stdlib()
            self._rebuild_lifecycle()

    def bind_context(self, **fields: Any) -> None:
        """Add ``fields`` to every later log line of the current request (from any of its
        threads and tasks) and to its request line; outside a request, to the current context."""
        bind_context(**fields)

    def _current_pipeline(self) -> LogPipeline | None:
        return self.pipeline

    def add_health_check(
        self,
        name: str,
        check: Any,
        *,
        critical: bool = True,
        interval: float = 10.0,
        timeout: float = 5.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 1,
    ) -> None:
        """Check a dependency in the background and report it on the readiness endpoint.

        ``check``: a SQLAlchemy engine (``SELECT 1``), a Redis client (``PING``), a function
        (sync or async: None or True is healthy, False or an exception is not) or a
        :class:`telemetry_web.health.Check`. See :meth:`telemetry_web.health.Health.add_check`.
        """
        self.health.add_check(
            name, check, critical=critical, interval=interval, timeout=timeout,
            unhealthy_threshold=unhealthy_threshold, healthy_threshold=healthy_threshold,
        )  # fmt: skip

    def health_check(
        self,
        name: str,
        *,
        critical: bool = True,
        interval: float = 10.0,
        timeout: float = 5.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 1,
    ) -> Callable[[_F], _F]:
        """Decorator: ``@telemetry.health_check("quota", critical=False)`` on a sync or async
        function registers it as a health check (:meth:`add_health_check`)."""
        return self.health.check(
            name, critical=critical, interval=interval, timeout=timeout,
            unhealthy_threshold=unhealthy_threshold, healthy_threshold=healthy_threshold,
        )  # fmt: skip

    def start_health_checks(self, *, thread: bool | None = None) -> None:
        """Run the health checks in the background (adapters call this at app start).

        ``thread=False``: a task on the running event loop (the ASGI lifespan); ``True``: a
        daemon thread (WSGI); ``None``: the running loop if there is one. Idempotent; in a
        forked worker a thread runner starts again by itself.
        """
        self.health.start(thread=thread)

    def stop_health_checks(self, timeout: float = 5.0) -> None:
        """Stop the background health checks (kills scripts in flight)."""
        self.health.stop(timeout)

    def _health_logger(self) -> FilteringBoundLogger:
        return self.get_logger("telemetry_web.health")

    def flush(self, timeout: float = 5.0) -> None:
        """Deliver every span and log event queued so far (lifespan shutdown calls this).

        Each exporter's queue and the log pipeline flush at once, in threads of their own, all
        within ``timeout`` (a hung backend uses up its own share only)."""
        flush_parts(
            timeout, provider=self.tracer_provider, pipeline=self.pipeline,
            outputs=self._metric_outputs,
        )  # fmt: skip

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop everything, within ``timeout`` seconds in all; the object cannot record
        afterwards.

        Health checks, each span exporter's queue, the application's own exporters, the log
        pipeline (and its sinks) and the metrics server stop in parallel, each in a thread of
        its own joined against one deadline; whatever is still queued or in flight when a
        component's share runs out is counted as dropped with reason ``shutdown``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, self._metrics_server = self._metrics_server, None
            history, self._metric_history = self._metric_history, None
            alerting, self._alerting = self._alerting, None
            outputs, self._metric_outputs = self._metric_outputs, []
            stop_parts(
                timeout, health=self.health, provider=self.tracer_provider,
                own_exporters=self._span_exporters, pipeline=self.pipeline, server=server,
                history=history, alerting=alerting, outputs=outputs,
            )  # fmt: skip
            if self._bridge is not None:
                logging.getLogger().removeHandler(self._bridge)
                self._bridge = None
            if self._process_metrics is not None:
                # This worker's files are retired by whoever sees it gone: gunicorn's master,
                # or the next scrape (a process that goes on must keep writing to them).
                self._process_metrics.stop()

    def __repr__(self) -> str:
        s = self.settings
        return f"<Telemetry service={s.service!r} environment={s.environment!r}>"


_default: Telemetry | None = None
_default_lock = threading.Lock()


def default_telemetry(service_hint: str | None = None) -> Telemetry:
    """The process-wide Telemetry built from the environment, for adapters given none.

    ``service_hint`` (the launcher passes the app's package) names the service when neither the
    configuration nor the environment does, instead of ``unknown_service``.
    """
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            service = None
            if service_hint and load_settings().service == sc.DEFAULT_SERVICE:
                service = service_hint
            _default = Telemetry(service=service)
        return _default
