"""The SDK tracer provider built from ``tracing``: resource, sampler, exporters, batching."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import (
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    Attributes,
    Resource,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.version import __version__ as _SDK_VERSION
from opentelemetry.trace import NoOpTracer, Tracer

from .. import __version__
from .._forksafe import register_at_fork
from ..config import TelemetrySettings
from ..errors import MissingExtraError
from ._batch import BoundedBatchProcessor, ExporterFactory
from ._environment import span_limits
from ._sampling import build_sampler

__all__ = [
    "ProcessResource",
    "TelemetryTracerProvider",
    "build_resource",
    "build_tracer_provider",
]

_log = logging.getLogger("telemetry_web.tracing")

# Instrumentation scopes whose server spans would duplicate ours: FastAPI (0.13x and newer) opens
# its own request and operation spans as soon as an SDK provider is global.
SUPERSEDED_SCOPES = frozenset({"fastapi"})


class TelemetryTracerProvider(TracerProvider):
    """An SDK provider that hands a no-op tracer to the scopes our middleware supersedes."""

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Tracer:
        if instrumenting_module_name in SUPERSEDED_SCOPES:
            return NoOpTracer()
        return super().get_tracer(instrumenting_module_name, *args, **kwargs)

    @property
    def batch_processors(self) -> list[BoundedBatchProcessor]:
        return [
            p
            for p in self._active_span_processor._span_processors
            if isinstance(p, BoundedBatchProcessor)
        ]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush every exporter's queue within ``timeout`` seconds in all, then stop."""
        deadline = time.monotonic() + timeout
        for processor in self.batch_processors:
            processor.shutdown(max(0.0, deadline - time.monotonic()))
        super().shutdown()


class _Borrowed(SpanExporter):
    """An exporter the application handed in: ``configure_tracing`` replaces the processor in
    front of it, not the exporter itself; ``Telemetry.shutdown`` shuts it down, once."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        return None


def build_tracer_provider(
    settings: TelemetrySettings,
    extra_exporters: Sequence[SpanExporter],
    dropped: Any,
) -> TelemetryTracerProvider:
    tracing = settings.tracing
    provider = TelemetryTracerProvider(
        resource=build_resource(settings),
        sampler=build_sampler(tracing.sampling, settings.gateway),
        span_limits=span_limits(),  # a bad OTEL_*_LIMIT variable gives the default, not a crash
    )
    batch = tracing.batch
    exporters: list[tuple[str, SpanExporter | ExporterFactory]] = [
        (type(e).__name__, _Borrowed(e)) for e in extra_exporters
    ]
    configured = _configured_exporters(settings, dropped)
    exporters += configured
    from ..store import store_for_spans

    if store_for_spans(settings.store, other_exporters=bool(exporters)):
        exporters.append(("store", _store_exporter_factory(settings)))
    for name, exporter in exporters:
        provider.add_span_processor(
            BoundedBatchProcessor(
                exporter,
                name,
                dropped,
                max_queue_size=batch.max_queue_size,
                max_queue_bytes=batch.max_queue_bytes,
                max_export_batch_size=batch.max_export_batch_size,
                schedule_delay=batch.schedule_delay,
            )
        )
    return provider


_DEFAULTS = TelemetrySettings()
_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")


def build_resource(settings: TelemetrySettings) -> Resource:
    """The resource of every span: ``tracing.resource_attributes`` (``OTEL_RESOURCE_ATTRIBUTES``
    merged in by the configuration sources) with ``service.name``, ``service.version`` and
    ``deployment.environment`` (and ``.name``, its current spelling) from the top-level keys.

    ``service`` and ``environment`` win over the same attributes in ``resource_attributes``
    unless they are left at their defaults (the sources already give ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` precedence over code in them). ``service.version`` from
    ``resource_attributes`` wins over ``service_version``, so ``OTEL_RESOURCE_ATTRIBUTES`` can
    set it. The process environment is not read here: ``use_env=False`` means none of it.
    """
    given = settings.tracing.resource_attributes
    attributes: dict[str, Any] = {
        TELEMETRY_SDK_LANGUAGE: "python",
        TELEMETRY_SDK_NAME: "opentelemetry",
        TELEMETRY_SDK_VERSION: _SDK_VERSION,
        "telemetry.distro.name": "telemetry-web",
        "telemetry.distro.version": __version__,
        **given,
    }
    if settings.service != _DEFAULTS.service or not given.get("service.name"):
        attributes["service.name"] = settings.service
    if settings.service_version and not given.get("service.version"):
        attributes["service.version"] = settings.service_version
    environment = next((given[k] for k in _ENVIRONMENT_KEYS if given.get(k)), None)
    if settings.environment != _DEFAULTS.environment or environment is None:
        environment = settings.environment
    for key in _ENVIRONMENT_KEYS:
        attributes[key] = environment
    return ProcessResource(attributes, instance_id=given.get(INSTANCE_ID) or None)


PID = "process.pid"
INSTANCE_ID = "service.instance.id"


_instance: tuple[int, str] = (0, "")


def process_instance_id() -> str:
    """This process's ``service.instance.id``: a UUID made on first use in each process, so a
    reconfigured provider keeps it and a forked worker gets its own."""
    global _instance
    pid = os.getpid()
    if _instance[0] != pid:
        _instance = (pid, str(uuid.uuid4()))
    return _instance[1]


class ProcessResource(Resource):
    """A resource naming the process that exports the span: ``process.pid``, and a
    ``service.instance.id`` that is a UUID per process (as OpenTelemetry recommends, and the
    same for every provider the process builds) unless the configuration gives one.

    Both are set again in a process forked after the resource was built (a gunicorn
    ``--preload`` worker): the tracers, the request span factory and the spans hold this one
    object, so it is updated in place, by a fork hook and, for a fork the hook missed (one made
    in C code), on the first read in the new process.
    """

    def __init__(self, attributes: dict[str, Any], *, instance_id: str | None = None) -> None:
        super().__init__(attributes)
        self._fixed_instance_id = instance_id
        self._pid = 0
        self._refresh()
        register_at_fork(after_in_child=self._refresh)

    def _refresh(self) -> None:
        pid = os.getpid()
        attributes = dict(self._attributes)
        attributes[PID] = pid
        attributes[INSTANCE_ID] = self._fixed_instance_id or process_instance_id()
        self._attributes = BoundedAttributes(attributes=attributes, immutable=True)
        self._pid = pid

    @property
    def attributes(self) -> Attributes:
        if self._pid != os.getpid():
            self._refresh()
        return self._attributes


def _configured_exporters(
    settings: TelemetrySettings, dropped: Any
) -> list[tuple[str, ExporterFactory]]:
    """A factory per configured exporter (called again in a forked worker); a missing extra
    is reported here, at configure time."""
    found: list[tuple[str, ExporterFactory]] = []
    # `batch.export_timeout` bounds one export: no exporter's request may wait longer (a hanging
    # collector holds the export thread for this long at most).
    limit = settings.tracing.batch.export_timeout
    otlp = settings.tracing.exporters.otlp
    if otlp is not None:
        _otlp_class(otlp.protocol)  # a missing extra is reported now
        timeout = min(otlp.timeout, limit)
        found.append(
            ("otlp", lambda: _otlp_exporter(otlp.endpoint, otlp.protocol, otlp.headers, timeout))
        )
    zipkin = settings.tracing.exporters.zipkin
    if zipkin is not None:
        from ._zipkin import zipkin_exporter_factory

        found.append(("zipkin", zipkin_exporter_factory(zipkin, settings.service, limit)))
    jaeger = settings.tracing.exporters.jaeger
    if jaeger is not None:
        from .jaeger._factory import jaeger_exporter_factory

        too_large = dropped.labels("jaeger", "too_large")
        found.append(("jaeger", jaeger_exporter_factory(jaeger, too_large.inc, limit)))
    return found


def _store_exporter_factory(settings: TelemetrySettings) -> ExporterFactory:
    """The embedded store's exporter (a new connection in a forked worker)."""
    store = settings.store

    def build() -> SpanExporter:
        from ..store import StoreSpanExporter

        return StoreSpanExporter(
            store.path, retention=store.retention, busy_timeout=store.busy_timeout,
            max_size=store.max_size,
        )  # fmt: skip

    return build


def _otlp_class(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
    except ImportError:
        raise MissingExtraError(
            "tracing.exporters.otlp", "opentelemetry-exporter-otlp", "otlp"
        ) from None
    return OTLPSpanExporter


def _otlp_exporter(
    endpoint: str | None, protocol: str, headers: dict[str, str], timeout: float
) -> SpanExporter:
    if endpoint and protocol != "grpc" and not endpoint.rstrip("/").endswith("/v1/traces"):
        # OTEL_EXPORTER_OTLP_ENDPOINT names the collector; the HTTP exporter wants the signal path.
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    kwargs: dict[str, Any] = {"timeout": timeout}
    if endpoint:
        kwargs["endpoint"] = endpoint
    if headers:
        kwargs["headers"] = headers
    exporter: SpanExporter = _otlp_class(protocol)(**kwargs)
    return exporter
