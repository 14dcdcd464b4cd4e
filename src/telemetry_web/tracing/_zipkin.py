"""The Zipkin v2 JSON exporter, with ``local_endpoint {service_name, ipv4, port}`` from config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Span
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..config._model import ZipkinExporterSettings
from ..errors import MissingExtraError
from ._batch import ExporterFactory

__all__ = ["zipkin_exporter_factory"]


def zipkin_exporter_factory(
    settings: ZipkinExporterSettings, service: str, export_timeout: float | None = None
) -> ExporterFactory:
    """A factory of Zipkin exporters; raises MissingExtraError now when the extra is missing.

    ``export_timeout`` caps the request timeout (the exporter's own is 10 s, or
    ``OTEL_EXPORTER_ZIPKIN_TIMEOUT``).
    """
    try:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
    except ImportError:
        raise MissingExtraError(
            "tracing.exporters.zipkin", "opentelemetry-exporter-zipkin-json", "zipkin"
        ) from None

    local = settings.local_endpoint
    service_name = (local.service_name if local else None) or None

    class _Exporter(ZipkinExporter):
        """Zipkin's exporter with localEndpoint.serviceName from the configuration, no
        ``"kind": null`` for internal spans (the v2 API allows only its four kinds), and a
        raised error carrying the status when the collector refuses a batch."""

        def export(self, spans: Sequence[Span]) -> SpanExportResult:  # type: ignore[override]
            if self._closed:
                return SpanExportResult.FAILURE
            if spans:
                name = service_name or spans[0].resource.attributes.get("service.name")
                if name:
                    self.local_node.service_name = name
            encoded = json.loads(self.encoder.serialize(spans, self.local_node))
            for span in encoded:
                if span.get("kind", "") is None:
                    del span["kind"]
            result: Any = self.session.post(
                url=self.endpoint,
                data=json.dumps(encoded),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
            if not 200 <= result.status_code < 300:
                raise RuntimeError(f"HTTP {result.status_code} from {self.endpoint}")
            return SpanExportResult.SUCCESS

    def build() -> SpanExporter:
        exporter = _Exporter(
            endpoint=settings.endpoint,
            local_node_ipv4=local.ipv4 if local else None,
            local_node_port=local.port if local else None,
        )
        if export_timeout is not None:
            exporter.timeout = min(exporter.timeout, export_timeout)  # type: ignore[assignment]
        return exporter

    return build
