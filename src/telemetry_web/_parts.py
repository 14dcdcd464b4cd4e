"""Building a Telemetry's parts from its settings: the ``/metrics`` endpoint and its server, the
metric outputs, the log sinks and pipeline, the stdlib bridge, the request lifecycle and the
built-in routes.

:class:`~telemetry_web._engine.Telemetry` decides when a part is (re)built and what it replaces;
the functions here only build, from settings and the parts they depend on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import semconv as sc
from ._lifecycle import RequestLifecycle
from ._redaction import QueryRedactor
from .config import (
    LoggingSettings,
    MetricsSettings,
    TelemetrySettings,
    not_built_yet,
    parse_section,
)
from .errors import ConfigError
from .gateway._policy import request_log_filter
from .health import Health
from .logging._build import build_sinks
from .logging._levels import LEVELS, LevelTable
from .logging._loggers import StdlibBridge
from .logging._pipeline import LogPipeline
from .logging._processors import build_processors
from .logging._sinks import LogSink
from .mesh._proxy import build_lifecycle
from .metrics._exposition import MetricsEndpoint, serve_metrics_in_thread
from .metrics._http import HttpMetrics
from .metrics._multiprocess import MultiprocessCollector, ProcessMetrics
from .metrics._registry import Metric, MetricSet
from .tracing._propagation import Extractor
from .tracing._span import SpanFactory

__all__ = [
    "Endpoint",
    "Routes",
    "build_exposition",
    "build_log_pipeline",
    "build_log_sinks",
    "build_metric_outputs",
    "build_request_lifecycle",
    "build_routes",
    "drop_counters",
    "install_stdlib_bridge",
    "reject_unbuilt",
    "replace_section",
    "values_are_shared",
]

_log = logging.getLogger("telemetry_web")

# A built-in route: request headers (lower-case names; the query string under the key
# telemetry_web.health.QUERY_KEY, ":query") -> (status, headers, body)
Endpoint = Callable[[Mapping[str, str]], tuple[int, list[tuple[str, str]], bytes]]


# --- settings ---------------------------------------------------------------------------------


def reject_unbuilt(settings: TelemetrySettings) -> None:
    """ConfigError for sections the model accepts but nothing builds yet."""
    problems = not_built_yet(settings)
    if problems:
        raise ConfigError(problems)


def replace_section(
    settings: TelemetrySettings, name: str, section: Any, cls: type
) -> tuple[TelemetrySettings, Any]:
    """``settings`` with section ``name`` replaced by ``section`` (a ``cls`` or a mapping shaped
    like it), and that section; ``section`` None: both unchanged."""
    if section is None:
        return settings, getattr(settings, name)
    if isinstance(section, Mapping):
        section = parse_section(cls, section, path=name)
    updated = dataclasses.replace(settings, **{name: section})
    reject_unbuilt(updated)
    return updated, section


def values_are_shared() -> bool:
    """Whether prometheus-client keeps values in the multiprocess files (fixed at its import)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


# --- metrics ----------------------------------------------------------------------------------


def drop_counters(metrics: MetricSet) -> tuple[Metric, Metric, Metric]:
    """The counters of what the spans', the logs' and the metric outputs' paths drop."""
    spans = (
        metrics.builder("counter", sc.SPANS_DROPPED)
        .with_description("Spans dropped before export, by exporter and reason.")
        .with_label_keys("exporter", "reason")
        .register()
    )
    logs = (
        metrics.builder("counter", sc.LOG_EVENTS_DROPPED)
        .with_description("Log events dropped before delivery, by sink and reason.")
        .with_label_keys("sink", "reason")
        .register()
    )
    outputs = (
        metrics.builder("counter", sc.METRICS_DROPPED)
        .with_description("Metric samples not delivered by a metric output, by reason.")
        .with_label_keys("exporter", "reason")
        .register()
    )
    return spans, logs, outputs


def build_exposition(
    settings: MetricsSettings,
    metrics: MetricSet,
    *,
    shared_dir: str | None,
    process_metrics: ProcessMetrics | None,
) -> tuple[MetricsEndpoint | None, Any, ProcessMetrics | None]:
    """``(endpoint, server, process metrics)`` of ``metrics.collectors.prometheus``: the
    ``/metrics`` endpoint (over every worker's files when ``shared_dir``), its own server when
    it has a port, and the per-process metrics the merged scrapes refresh (``process_metrics``
    when one exists already)."""
    prom = settings.collectors.prometheus
    if not (settings.enabled and prom is not None and prom.enabled):
        return None, None, process_metrics
    collectors = None
    if shared_dir is not None:
        if process_metrics is None:
            process_metrics = ProcessMetrics(metrics)
        refresh = process_metrics.refresh
        collectors = [MultiprocessCollector(shared_dir, before_collect=refresh)]
    endpoint = MetricsEndpoint(
        metrics.registry, bearer_token=prom.bearer_token, collectors=collectors
    )
    server = None
    if prom.port is not None and shared_dir is not None:
        _log.warning(
            "metrics.collectors.prometheus.port is ignored with several worker "
            "processes (each would bind it); /metrics is served by the app instead"
        )
    elif prom.port is not None:
        server = serve_metrics_in_thread(endpoint, prom.host, prom.port, prom.path)
    return endpoint, server, process_metrics


def build_metric_outputs(
    settings: TelemetrySettings,
    metrics: MetricSet,
    *,
    dropped: Metric,
    shared_dir: str | None,
    process_metrics: ProcessMetrics | None,
) -> list[Any]:
    """The pushers of ``metrics.exporters`` (remote write, ...) over the same metrics as
    ``/metrics`` (all workers' in multiprocess mode), and the StatsD output."""
    section = settings.metrics
    statsd = section.collectors.statsd
    if not section.enabled or not (section.exporters or statsd is not None):
        return []
    from .metrics.outputs._build import build_outputs, build_statsd, metrics_source
    from .tracing._provider import build_resource

    refresh = process_metrics.refresh if process_metrics is not None else None
    outputs: list[Any] = build_outputs(
        section.exporters,
        source=metrics_source(metrics.registry, shared_dir, refresh),
        dropped=dropped,
        constant_labels=dict(metrics.constant_labels),
        shared_dir=shared_dir,
        resource=build_resource(settings),  # OTLP: the spans' resource
    )
    if statsd is not None:  # every worker sends its own deltas
        outputs.append(
            build_statsd(
                statsd,
                registry=metrics.registry,
                dropped=dropped,
                constant_labels=dict(metrics.constant_labels),
                shared_dir=shared_dir,
                before_collect=refresh,
            )
        )
    return outputs


# --- logging ----------------------------------------------------------------------------------


def build_log_sinks(
    settings: TelemetrySettings, *, dropped: Metric, extra: Sequence[LogSink]
) -> list[LogSink]:
    """The configured sinks, the store's when nothing else keeps the lines, then ``extra``.

    Raises:
        ConfigError: a sink cannot be built (see ``build_sinks``).
    """
    section = settings.logging
    resource = None
    if section.sinks.otlp is not None:  # the OTLP records carry the spans' resource
        from .tracing._provider import build_resource

        resource = build_resource(settings)
    sinks = build_sinks(section, dropped=dropped, resource=resource)
    from .store import StoreLogSink, store_for_logs

    store = settings.store
    configured = section.sinks
    kept = any(s is not None for s in (configured.file, configured.elasticsearch,
                                       configured.otlp))  # fmt: skip
    if store_for_logs(store, other_sinks=kept or bool(extra)):
        sinks.append(
            StoreLogSink(
                store.path, retention=store.retention, busy_timeout=store.busy_timeout,
                max_size=store.max_size, dropped=dropped,
            )
        )  # fmt: skip
    sinks.extend(extra)
    return sinks


def build_log_pipeline(
    settings: TelemetrySettings, sinks: list[LogSink], *, dropped: Metric
) -> LogPipeline:
    """The pipeline of ``logging`` (the gateway's request-log filter first) over ``sinks``."""
    section = settings.logging
    return LogPipeline(
        sinks=sinks,
        processors=request_log_filter(settings.gateway) + build_processors(section.processors),
        static_fields={"service": settings.service, "environment": settings.environment},
        max_queue=section.queue_size,
        max_queue_bytes=section.queue_bytes,
        dropped=dropped,
    )


def install_stdlib_bridge(
    old: StdlibBridge | None, pipeline: LogPipeline | None, levels: LevelTable, *, capture: bool
) -> StdlibBridge | None:
    """The root logger's handler into ``pipeline`` in place of ``old`` (and of any other
    Telemetry's: the newest one wins), or none when not ``capture``."""
    root = logging.getLogger()
    if old is not None:
        root.removeHandler(old)
    if not capture or pipeline is None:
        return None
    for handler in list(root.handlers):
        if isinstance(handler, StdlibBridge):
            root.removeHandler(handler)
    bridge = StdlibBridge(pipeline)
    root.addHandler(bridge)
    levels.apply_to_stdlib()
    return bridge


def level_for(settings: LoggingSettings, logger_name: str) -> str:
    """The level of ``logger_name``: its own, its nearest dotted parent's, or the default."""
    name = logger_name
    while name:
        if name in settings.levels:
            return settings.levels[name]
        name = name.rpartition(".")[0]
    return settings.level


# --- the request path -------------------------------------------------------------------------


def build_request_lifecycle(
    s: TelemetrySettings,
    *,
    spans: SpanFactory | None,
    extractor: Extractor,
    http_metrics: HttpMetrics | None,
    pipeline: LogPipeline | None,
) -> RequestLifecycle:
    """The per-request work for the effective settings ``s`` (a ``mesh:`` section's applied)."""
    return build_lifecycle(
        s,
        spans=spans,
        extractor=extractor,
        http_metrics=http_metrics,
        pipeline=pipeline,
        request_log=s.logging.request_log,
        request_log_level=LEVELS[level_for(s.logging, "telemetry_web.request")],
        redact_query=QueryRedactor(s.http.redact_query_params),
        request_id_header=s.http.request_id_header,
        capture_request_headers=s.http.capture_headers.request,
        capture_response_headers=s.http.capture_headers.response,
        redact_headers=s.http.redact_headers,
    )


@dataclasses.dataclass(frozen=True)
class Routes:
    """The built-in endpoints by path, and the paths no request telemetry is recorded for."""

    endpoints: dict[str, Endpoint]
    excluded_paths: frozenset[str]
    excluded_prefixes: tuple[str, ...]
    redacted_headers: frozenset[str]


def build_routes(
    s: TelemetrySettings, health: Health, metrics_endpoint: MetricsEndpoint | None, *,
    serves_own_port: bool,
) -> Routes:  # fmt: skip
    """``/health``, ``/ready`` and, unless served on a port of its own, ``/metrics`` (paths as
    configured); excluded: those, ``http.exclude_paths`` (``*`` at the end: a prefix)."""
    endpoints: dict[str, Endpoint] = {
        s.health.liveness_endpoint: health.liveness,
        s.health.readiness_endpoint: health.readiness,
    }
    prom = s.metrics.collectors.prometheus
    if metrics_endpoint is not None and prom is not None and not serves_own_port:
        endpoint = metrics_endpoint
        endpoints[prom.path] = lambda h: endpoint.render(
            h.get("accept"), h.get("accept-encoding"), h.get("authorization")
        )
    exact = {p for p in s.http.exclude_paths if not p.endswith("*")} | set(endpoints)
    if prom is not None:
        exact.add(prom.path)
    return Routes(
        endpoints=endpoints,
        excluded_paths=frozenset(exact),
        excluded_prefixes=tuple(p[:-1] for p in s.http.exclude_paths if p.endswith("*")),
        redacted_headers=frozenset(h.lower() for h in s.http.redact_headers) | sc.SENSITIVE_HEADERS,
    )
