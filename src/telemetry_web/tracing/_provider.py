"""The SDK tracer provider built from ``tracing``: resource, sampler, exporters, batching."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracer, Tracer

from .. import __version__
from ..config import TelemetrySettings
from ..errors import MissingExtraError
from ._sampling import build_sampler

__all__ = ["TelemetryTracerProvider", "build_tracer_provider"]

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


class _CountingBatchProcessor(BatchSpanProcessor):
    """The SDK's bounded batch processor, counting what a full queue drops."""

    def __init__(self, exporter: SpanExporter, name: str, dropped: Any, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._dropped = dropped.labels(name, "queue_full")
        self._max = kwargs["max_queue_size"]
        self._queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)

    def on_end(self, span: ReadableSpan) -> None:
        if self._queue is not None and len(self._queue) >= self._max:
            self._dropped.inc()
        super().on_end(span)


class _OncePerPeriod(logging.Filter):
    """Lets a repeated SDK warning ("Queue full, dropping span") through once per period;
    the drops themselves are counted in telemetry_spans_dropped_total."""

    def __init__(self, period: float = 30.0) -> None:
        super().__init__()
        self._period = period
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = record.created
        key = str(record.msg)
        if now - self._last.get(key, float("-inf")) < self._period:
            return False
        self._last[key] = now
        return True


_SDK_BATCH_LOGGER = logging.getLogger("opentelemetry.sdk._shared_internal")
if not any(isinstance(f, _OncePerPeriod) for f in _SDK_BATCH_LOGGER.filters):
    _SDK_BATCH_LOGGER.addFilter(_OncePerPeriod())


def build_tracer_provider(
    settings: TelemetrySettings,
    extra_exporters: Sequence[SpanExporter],
    dropped: Any,
) -> TelemetryTracerProvider:
    tracing = settings.tracing
    attributes: dict[str, Any] = {
        "service.name": settings.service,
        "deployment.environment.name": settings.environment,
        "telemetry.distro.name": "telemetry-web",
        "telemetry.distro.version": __version__,
        **tracing.resource_attributes,
    }
    provider = TelemetryTracerProvider(
        resource=Resource.create(attributes), sampler=build_sampler(tracing.sampling)
    )
    batch = tracing.batch
    exporters: list[tuple[str, SpanExporter]] = [
        (type(e).__name__, e) for e in extra_exporters
    ] + _configured_exporters(settings)
    for name, exporter in exporters:
        provider.add_span_processor(
            _CountingBatchProcessor(
                exporter,
                name,
                dropped,
                max_queue_size=batch.max_queue_size,
                max_export_batch_size=batch.max_export_batch_size,
                schedule_delay_millis=batch.schedule_delay * 1000,
                export_timeout_millis=batch.export_timeout * 1000,
            )
        )
    return provider


def _configured_exporters(settings: TelemetrySettings) -> list[tuple[str, SpanExporter]]:
    found: list[tuple[str, SpanExporter]] = []
    otlp = settings.tracing.exporters.otlp
    if otlp is not None:
        found.append(
            ("otlp", _otlp_exporter(otlp.endpoint, otlp.protocol, otlp.headers, otlp.timeout))
        )
    zipkin = settings.tracing.exporters.zipkin
    if zipkin is not None:
        try:
            from opentelemetry.exporter.zipkin.json import ZipkinExporter
        except ImportError:
            raise MissingExtraError(
                "tracing.exporters.zipkin", "opentelemetry-exporter-zipkin-json", "zipkin"
            ) from None
        local = zipkin.local_endpoint
        found.append(
            (
                "zipkin",
                ZipkinExporter(
                    endpoint=zipkin.endpoint,
                    local_node_ipv4=local.ipv4 if local else None,
                    local_node_port=local.port if local else None,
                ),
            )
        )
    return found


def _otlp_exporter(
    endpoint: str | None, protocol: str, headers: dict[str, str], timeout: float
) -> SpanExporter:
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
    if endpoint and protocol != "grpc" and not endpoint.rstrip("/").endswith("/v1/traces"):
        # OTEL_EXPORTER_OTLP_ENDPOINT names the collector; the HTTP exporter wants the signal path.
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    kwargs: dict[str, Any] = {"timeout": timeout}
    if endpoint:
        kwargs["endpoint"] = endpoint
    if headers:
        kwargs["headers"] = headers
    return OTLPSpanExporter(**kwargs)
