"""The :class:`Telemetry` object: one entry point that owns metrics, tracing, logging and health.

Adapters hold a Telemetry and call its :class:`~telemetry_web._lifecycle.RequestLifecycle`;
everything they need (built-in endpoints, excluded paths) is decided here, once, not per request.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from structlog.typing import FilteringBoundLogger

from . import __version__
from . import semconv as sc
from ._redaction import QueryRedactor
from .config import (
    HealthSettings,
    LoggingSettings,
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
    load_settings,
    not_built_yet,
    parse_section,
)
from .config._model import GatewaySettings
from .errors import ConfigError
from .gateway._policy import http_metrics_for, request_log_filter
from .health import Health
from .logging import (
    LEVELS,
    LevelTable,
    LogPipeline,
    LogSink,
    StdlibBridge,
    TelemetryLogger,
    bind_context,
    build_processors,
    build_sinks,
    level_number,
    make_logger,
)
from .mesh._profiles import effective_settings
from .mesh._proxy import build_extractor, build_lifecycle
from .metrics import (
    HttpMetrics,
    Metric,
    MetricBuilder,
    MetricsEndpoint,
    MetricSet,
    MultiprocessCollector,
    ProcessMetrics,
    multiprocess_dir,
    serve_metrics_in_thread,
)
from .tracing import (
    Extractor,
    SpanFactory,
    TelemetryTracer,
    TelemetryTracerProvider,
    build_tracer_provider,
    install_global_provider,
)

__all__ = ["Endpoint", "Telemetry", "default_telemetry"]

_log = logging.getLogger("telemetry_web")
_F = TypeVar("_F", bound=Callable[..., Any])

# A built-in route: request headers (lower-case names; the query string under the key
# telemetry_web.health.QUERY_KEY, ":query") -> (status, headers, body)
Endpoint = Callable[[Mapping[str, str]], tuple[int, list[tuple[str, str]], bytes]]


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
        _reject_unbuilt(settings)
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
        self._spans_dropped = (
            self.metrics.builder("counter", sc.SPANS_DROPPED)
            .with_description("Spans dropped before export, by exporter and reason.")
            .with_label_keys("exporter", "reason")
            .register()
        )
        self._logs_dropped = (
            self.metrics.builder("counter", sc.LOG_EVENTS_DROPPED)
            .with_description("Log events dropped before delivery, by sink and reason.")
            .with_label_keys("sink", "reason")
            .register()
        )
        self._metrics_dropped = (
            self.metrics.builder("counter", sc.METRICS_DROPPED)
            .with_description("Metric samples not delivered by a metric output, by reason.")
            .with_label_keys("exporter", "reason")
            .register()
        )
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
        self.configure_metrics()
        self.configure_tracing()
        self.configure_logging()
        self.configure_health()
        self._configure_alerting()
        _close_at_exit(self)

    # --- configuration ------------------------------------------------------------------------

    def configure_metrics(self, section: MetricsSettings | Mapping[str, Any] | None = None) -> None:
        """(Re)build the HTTP metrics and the ``/metrics`` endpoint from ``metrics``."""
        with self._lock:
            settings = self._replace("metrics", section, MetricsSettings)
            prom = settings.collectors.prometheus
            shared_dir = multiprocess_dir() if _values_are_shared() else None
            self.http_metrics = (
                http_metrics_for(
                    self.metrics, settings, self.settings.gateway, exemplars=shared_dir is None
                )
                if settings.enabled
                else None
            )
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server = None
            if settings.enabled and prom is not None and prom.enabled:
                collectors = None
                if shared_dir is not None:
                    if self._process_metrics is None:
                        self._process_metrics = ProcessMetrics(self.metrics)
                    refresh = self._process_metrics.refresh
                    collectors = [MultiprocessCollector(shared_dir, before_collect=refresh)]
                self.metrics_endpoint = MetricsEndpoint(
                    self.registry, bearer_token=prom.bearer_token, collectors=collectors
                )
                if prom.port is not None and shared_dir is not None:
                    _log.warning(
                        "metrics.collectors.prometheus.port is ignored with several worker "
                        "processes (each would bind it); /metrics is served by the app instead"
                    )
                elif prom.port is not None:
                    self._metrics_server = serve_metrics_in_thread(
                        self.metrics_endpoint, prom.host, prom.port, prom.path
                    )
            else:
                self.metrics_endpoint = None
            self._configure_metric_history(shared_dir)
            self._configure_metric_outputs(settings, shared_dir)
            self._rebuild_lifecycle()

    def _configure_metric_outputs(self, settings: MetricsSettings, shared_dir: str | None) -> None:
        """The pushers of ``metrics.exporters`` (remote write, ...), over the same metrics as
        ``/metrics`` (all workers' in multiprocess mode)."""
        old, self._metric_outputs = self._metric_outputs, []
        for output in old:
            output.shutdown(1.0)
        statsd = settings.collectors.statsd
        if not settings.enabled or not (settings.exporters or statsd is not None):
            return
        from .metrics.outputs import build_outputs, metrics_source
        from .tracing._provider import build_resource

        refresh = self._process_metrics.refresh if self._process_metrics is not None else None
        self._metric_outputs = build_outputs(
            settings.exporters,
            source=metrics_source(self.registry, shared_dir, refresh),
            dropped=self._metrics_dropped,
            constant_labels=dict(self.metrics.constant_labels),
            shared_dir=shared_dir,
            resource=build_resource(self.settings),  # OTLP: the spans' resource
        )
        if statsd is not None:  # every worker sends its own deltas
            from .metrics.outputs import build_statsd

            self._metric_outputs.append(
                build_statsd(
                    statsd,
                    registry=self.registry,
                    dropped=self._metrics_dropped,
                    constant_labels=dict(self.metrics.constant_labels),
                    shared_dir=shared_dir,
                    before_collect=refresh,
                )
            )

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

        shared_dir = multiprocess_dir() if _values_are_shared() else None
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
                sinks = build_sinks(
                    settings, dropped=self._logs_dropped, resource=self._log_resource(settings)
                )
            except ConfigError:
                self.settings = previous
                raise
            from .store import StoreLogSink, store_for_logs

            store = self.settings.store
            configured = settings.sinks
            kept = any(s is not None for s in (configured.file, configured.elasticsearch,
                                               configured.otlp))  # fmt: skip
            if store_for_logs(store, other_sinks=kept or bool(self._log_sinks)):
                sinks.append(
                    StoreLogSink(
                        store.path, retention=store.retention, busy_timeout=store.busy_timeout,
                        max_size=store.max_size, dropped=self._logs_dropped,
                    )
                )  # fmt: skip
            sinks.extend(self._log_sinks)
            self.log_levels.configure(settings.level, settings.levels)
            self.pipeline = LogPipeline(
                sinks=sinks,
                processors=request_log_filter(self.settings.gateway)
                + build_processors(settings.processors),
                static_fields={"service": self.settings.service,
                               "environment": self.settings.environment},
                max_queue=settings.queue_size,
                max_queue_bytes=settings.queue_bytes,
                dropped=self._logs_dropped,
            )  # fmt: skip
            if old is not None:
                old.shutdown()
            self._install_stdlib_bridge(settings)
            self._rebuild_lifecycle()

    def _log_resource(self, settings: LoggingSettings) -> Any:
        """The spans' resource, for the OTLP log records (None when no sink needs it)."""
        if settings.sinks.otlp is None:
            return None
        from .tracing._provider import build_resource

        return build_resource(self.settings)

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
        if section is None:
            return getattr(self.settings, name)
        if isinstance(section, Mapping):
            section = parse_section(cls, section, path=name)
        import dataclasses

        updated = dataclasses.replace(self.settings, **{name: section})
        _reject_unbuilt(updated)
        self.settings = updated
        return section

    def _install_stdlib_bridge(self, settings: LoggingSettings) -> None:
        root = logging.getLogger()
        if self._bridge is not None:
            root.removeHandler(self._bridge)
            self._bridge = None
        if not self._capture_stdlib or self.pipeline is None:
            return
        for handler in list(root.handlers):
            if isinstance(handler, StdlibBridge):  # another Telemetry's: the newest one wins
                root.removeHandler(handler)
        self._bridge = StdlibBridge(self.pipeline)
        root.addHandler(self._bridge)
        self.log_levels.apply_to_stdlib()

    def _rebuild_lifecycle(self) -> None:
        if not hasattr(self, "health"):
            return  # still in __init__; the last configure_* call builds it
        s = effective_settings(self.settings)  # a `mesh:` section's headers and probe paths
        self.lifecycle = build_lifecycle(
            s,
            spans=self.span_factory,
            extractor=self.extractor,
            http_metrics=self.http_metrics,
            pipeline=self.pipeline,
            request_log=s.logging.request_log,
            request_log_level=LEVELS[self._level_for("telemetry_web.request")],
            redact_query=QueryRedactor(s.http.redact_query_params),
            request_id_header=s.http.request_id_header,
            capture_request_headers=s.http.capture_headers.request,
            capture_response_headers=s.http.capture_headers.response,
            redact_headers=s.http.redact_headers,
        )
        serves_own_port = self._metrics_server is not None
        endpoints: dict[str, Endpoint] = {
            s.health.liveness_endpoint: self.health.liveness,
            s.health.readiness_endpoint: self.health.readiness,
        }
        prom = s.metrics.collectors.prometheus
        # /ready?verbose shows check targets and errors: behind the /metrics token when set
        self.health.verbose_token = prom.bearer_token if prom is not None else None
        if self.metrics_endpoint is not None and prom is not None and not serves_own_port:
            endpoint = self.metrics_endpoint
            endpoints[prom.path] = lambda h: endpoint.render(
                h.get("accept"), h.get("accept-encoding"), h.get("authorization")
            )
        self.endpoints = endpoints
        exact = {p for p in s.http.exclude_paths if not p.endswith("*")} | set(endpoints)
        if prom is not None:
            exact.add(prom.path)
        self.excluded_paths = frozenset(exact)
        self.excluded_prefixes = tuple(p[:-1] for p in s.http.exclude_paths if p.endswith("*"))
        self.redacted_headers = (
            frozenset(h.lower() for h in s.http.redact_headers) | sc.SENSITIVE_HEADERS
        )

    def is_excluded(self, path: str) -> bool:
        return path in self.excluded_paths or (
            bool(self.excluded_prefixes) and path.startswith(self.excluded_prefixes)
        )

    def _level_for(self, logger_name: str) -> str:
        levels = self.settings.logging.levels
        name = logger_name
        while name:
            if name in levels:
                return levels[name]
            name = name.rpartition(".")[0]
        return self.settings.logging.level

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
        import dataclasses
        import typing

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
        inner = _inner_budget(timeout)
        tasks: list[tuple[str, Callable[[], object]]] = []
        provider = self.tracer_provider
        if provider is not None:
            millis = int(inner * 1000)
            for processor in provider.batch_processors:
                tasks.append((f"spans {processor.name}",
                              functools.partial(processor.force_flush, millis)))  # fmt: skip
        pipeline = self.pipeline
        if pipeline is not None:
            tasks.append(("logs", functools.partial(pipeline.flush, inner)))
        for output in self._metric_outputs:  # a push of the registry as it is now
            tasks.append((f"metrics {output.name}", functools.partial(output.flush, inner)))
        _in_parallel(tasks, timeout)

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
            inner = _inner_budget(timeout)
            tasks: list[tuple[str, Callable[[], object]]] = [
                ("health", functools.partial(self.health.shutdown, inner))
            ]
            provider = self.tracer_provider
            # The application's own exporters, kept open until now, are shut down after the
            # queue in front of them (in the same thread), or alone when no queue is.
            own = list(self._span_exporters)
            for processor in provider.batch_processors if provider is not None else ():
                borrowed = getattr(processor.exporter, "exporter", None)
                mine = next((e for e in own if e is borrowed), None)
                if mine is not None:
                    own.remove(mine)
                stop = functools.partial(_stop_processor, processor, inner, mine)
                tasks.append((f"spans {processor.name}", stop))
            for exporter in own:
                tasks.append((f"exporter {type(exporter).__name__}", exporter.shutdown))
            if self.pipeline is not None:
                tasks.append(("logs", functools.partial(self.pipeline.shutdown, inner)))
            server, self._metrics_server = self._metrics_server, None
            if server is not None:
                tasks.append(("metrics server", functools.partial(_stop_server, server)))
            history, self._metric_history = self._metric_history, None
            if history is not None:  # a last snapshot, when this process writes the history
                tasks.append(("metric history", functools.partial(history.stop, inner)))
            alerting, self._alerting = self._alerting, None
            if alerting is not None:  # queued notifications are sent within the budget
                tasks.append(("alerting", functools.partial(alerting.stop, inner)))
            outputs, self._metric_outputs = self._metric_outputs, []
            for output in outputs:  # a last push, then the push lock is given up
                tasks.append((f"metrics {output.name}", functools.partial(output.shutdown, inner)))
            _in_parallel(tasks, timeout)
            if provider is not None:
                provider.shutdown(0.0)  # its processors are stopped: only the SDK's own part
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


def _inner_budget(timeout: float) -> float:
    """The share of a flush or shutdown budget each component gets: a little less than the
    whole, so that it has counted what it drops by the time the caller's deadline comes."""
    return max(0.0, timeout - min(0.2, timeout * 0.1))


def _in_parallel(tasks: Sequence[tuple[str, Callable[[], object]]], timeout: float) -> bool:
    """Run each task in a daemon thread of its own and wait for them until ``timeout``; False
    when one was still running then (it is left to finish on its own)."""
    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(target=_quietly, args=task, name=f"telemetry-stop-{task[0]}", daemon=True)
        for task in tasks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        _log.debug("still running at the end of the shutdown budget: %s", ", ".join(stuck))
    return not stuck


def _quietly(name: str, task: Callable[[], object]) -> None:
    try:
        task()
    except Exception:  # one component's failure must not stop the others
        _log.debug("%s failed to stop", name, exc_info=True)


def _stop_processor(processor: Any, timeout: float, exporter: SpanExporter | None) -> None:
    processor.shutdown(timeout)
    if exporter is not None:
        exporter.shutdown()


def _stop_server(server: Any) -> None:
    server.shutdown()
    server.server_close()


def _values_are_shared() -> bool:
    """Whether prometheus-client keeps values in the multiprocess files (fixed at its import)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _reject_unbuilt(settings: TelemetrySettings) -> None:
    problems = not_built_yet(settings)
    if problems:
        raise ConfigError(problems)


_LIVE: weakref.WeakSet[Telemetry] = weakref.WeakSet()


def _close_at_exit(telemetry: Telemetry) -> None:
    _LIVE.add(telemetry)
    _flush_on_sigterm()


_sigterm_previous: Any = None
_sigterm_installed = False


def _flush_on_sigterm() -> None:
    """Deliver queued spans and log lines when the process is told to stop.

    uvicorn re-raises SIGTERM after its graceful shutdown and gunicorn workers stop on it, so
    exit hooks may never run; with a lifespan the ASGI middleware flushes at shutdown, without
    one only a signal handler can. Ours is chained in front of whatever handler was there (the
    server's, or the default), never replacing it, and the flush runs in a thread joined with a
    bound, so that a lock held by the interrupted code can only delay the stop, never hang it.
    """
    global _sigterm_previous, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        _sigterm_previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        return
    _sigterm_installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    def flush_all() -> None:
        for telemetry in list(_LIVE):
            with contextlib.suppress(Exception):
                telemetry.flush(timeout=2.0)

    flusher = threading.Thread(target=flush_all, name="telemetry-sigterm-flush", daemon=True)
    flusher.start()
    flusher.join(3.0)
    previous = _sigterm_previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: terminate, as if we were not here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@atexit.register
def _shutdown_all() -> None:
    for telemetry in list(_LIVE):
        try:
            telemetry.shutdown(timeout=2.0)
        except Exception:  # exiting anyway; never turn a clean exit into a traceback
            pass


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
