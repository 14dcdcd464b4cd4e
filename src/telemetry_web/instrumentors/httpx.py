"""httpx (``httpx.Client`` and ``httpx.AsyncClient``): a CLIENT span per request, the trace
context in its headers, and the duration histogram.

Every client, those created before this call included::

    from telemetry_web.instrumentors import HttpxInstrumentor

    HttpxInstrumentor(telemetry=telemetry).instrument()

Only some clients::

    HttpxInstrumentor(telemetry=telemetry).instrument(client=[client, async_client])

What is recorded, per ``send`` (``get``, ``post``, ``stream``... all go through it):

- a CLIENT span named after the method (``GET``; ``HTTP`` for a method outside the standard
  set), child of the current span (the request's; with none there is no span, unless
  ``root_spans=True``), current while the request runs: ``http.request.method``, ``url.full``
  (``user:password@`` and the values of sensitive query parameters, ``http.redact_query_params``
  included, replaced by ``REDACTED``), ``server.address``, ``server.port``,
  ``http.response.status_code``; a 4xx or 5xx response sets ``error.type`` to the status code and
  the ERROR status, an exception (connection refused, timeout) is recorded with its type in
  ``error.type`` and re-raised unchanged. Redirects followed by httpx are part of the span; the
  status is the final response's. A streamed response's span ends when its headers arrive;
- the current context injected in the configured formats (``tracing.propagation``: W3C
  ``traceparent``, B3 single or multi-header, baggage) into a copy of the request: the
  ``Request`` and headers the caller passed are left as they were;
- ``http_client_request_duration_seconds{method,server_address,status}``, ``status`` being the
  response's status code or ``error`` when there was none.
"""

from __future__ import annotations

from typing import Any

from .. import semconv as sc
from ._base import missing
from ._http import HttpClientInstrumentor

try:
    import httpx
except ModuleNotFoundError:
    raise missing("httpx") from None

__all__ = ["HttpxInstrumentor"]


class HttpxInstrumentor(HttpClientInstrumentor):
    """Spans, propagation and metrics for httpx clients (sync and async), into one Telemetry.

    Args:
        telemetry: where spans and metrics go; its ``tracing.propagation`` formats are injected.
        root_spans: start a trace for requests made outside any span (default: metrics and
            nothing else).
    """

    token = "httpx"
    scope = sc.INSTRUMENTATION_HTTPX
    client_types = (httpx.Client, httpx.AsyncClient)

    def _global_targets(self) -> list[tuple[type, str, bool]]:
        return [(httpx.Client, "send", False), (httpx.AsyncClient, "send", True)]

    def _is_async_client(self, client: Any) -> bool:
        return isinstance(client, httpx.AsyncClient)

    def _method_and_url(self, request: Any) -> tuple[str, str]:
        return str(request.method), str(request.url)

    def _with_headers(self, request: Any, headers: dict[str, str]) -> Any:
        # A shallow copy keeps the body stream, extensions and content already read; only the
        # headers are new. (Request.__getstate__ drops the stream, so copy.copy cannot be used.)
        copy = object.__new__(type(request))
        copy.__dict__.update(vars(request))
        copy.headers = request.headers.copy()
        copy.headers.update(headers)
        return copy
