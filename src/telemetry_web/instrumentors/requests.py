"""requests (``requests.Session``, which ``requests.get`` and friends use too): a CLIENT span per
request, the trace context in its headers, and the duration histogram.

Every session, those created before this call and the module-level functions included::

    from telemetry_web.instrumentors import RequestsInstrumentor

    RequestsInstrumentor(telemetry=telemetry).instrument()

Only some sessions::

    RequestsInstrumentor(telemetry=telemetry).instrument(client=session)

What is recorded, per ``Session.send``:

- a CLIENT span named after the method (``GET``; ``HTTP`` for a method outside the standard
  set), child of the current span (the request's; with none there is no span, unless
  ``root_spans=True``), current while the request runs: ``http.request.method``, ``url.full``
  (``user:password@`` and the values of sensitive query parameters, ``http.redact_query_params``
  included, replaced by ``REDACTED``), ``server.address``, ``server.port``,
  ``http.response.status_code``; a 4xx or 5xx response sets ``error.type`` to the status code and
  the ERROR status, an exception (connection refused, timeout) is recorded with its type in
  ``error.type`` and re-raised unchanged. requests sends each redirect through ``send`` again:
  every hop is a span of its own, a child of the first one;
- the current context injected in the configured formats (``tracing.propagation``: W3C
  ``traceparent``, B3 single or multi-header, baggage) into a copy of the prepared request:
  the ``PreparedRequest`` and headers the caller passed are left as they were;
- ``http_client_request_duration_seconds{method,server_address,status}``, ``status`` being the
  response's status code or ``error`` when there was none.
"""

from __future__ import annotations

from typing import Any

from .. import semconv as sc
from ._base import missing
from ._http import HttpClientInstrumentor

try:
    import requests
except ModuleNotFoundError:
    raise missing("requests") from None

__all__ = ["RequestsInstrumentor"]


class RequestsInstrumentor(HttpClientInstrumentor):
    """Spans, propagation and metrics for requests sessions, into one Telemetry.

    Args:
        telemetry: where spans and metrics go; its ``tracing.propagation`` formats are injected.
        root_spans: start a trace for requests made outside any span (default: metrics and
            nothing else).
    """

    token = "requests"
    scope = sc.INSTRUMENTATION_REQUESTS
    client_types = (requests.Session,)

    def _global_targets(self) -> list[tuple[type, str, bool]]:
        return [(requests.Session, "send", False)]

    def _is_async_client(self, client: Any) -> bool:
        return False

    def _method_and_url(self, request: Any) -> tuple[str, str]:
        return str(request.method), str(request.url)

    def _with_headers(self, request: Any, headers: dict[str, str]) -> Any:
        copy = request.copy()  # headers, body, hooks and cookies copied
        copy.headers.update(headers)
        return copy
