"""The framework-neutral request lifecycle every adapter calls: begin, then finish.

``begin`` extracts the caller's trace context, starts the server span and makes it current,
binds the request id and counts the request in progress. ``finish`` records status, sizes,
duration and exception on the span, in the RED metrics and in one structured request log line.
Nothing here does I/O: spans and log events go to bounded queues drained by other threads.

Captured headers (``http.capture_headers``): the request ones are among ``wanted_headers``, so
adapters decode them with the others and ``begin`` records them; adapters that see
``response_header_names`` pick those from the response and call
:meth:`ActiveRequest.capture_response_headers`. Credentials are recorded as ``REDACTED``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from mypy_extensions import mypyc_attr
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import semconv as sc
from ._redaction import QueryRedactor, describe_exception, header_redactor
from .logging._context import CURRENT_REQUEST, hex_id
from .logging._pipeline import EVENT_BYTES, FIELD_BYTES, LogPipeline
from .logging._request_line import request_event
from .metrics._http import HttpMetrics
from .metrics._slots import SlotTable
from .tracing._propagation import Extractor
from .tracing._span import RequestSpan, SpanFactory, attach_span

__all__ = ["ActiveRequest", "RequestLifecycle"]

_log: Final = logging.getLogger("telemetry_web")
# The server's (host, port or None): a tuple from most servers, a list from some (an ASGI
# scope's "server"). A sequence, not a tuple, so that the compiled code accepts both.
ServerAddress = Sequence[Any]
_VALID_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_perf: Final = time.perf_counter
_getrandbits: Final = random.getrandbits
_NO_FIELDS: Final[Mapping[str, Any]] = {}
_SERVER: Final = SpanKind.SERVER  # (an Enum class's attributes go through its __getattr__)
_REQUEST_HEADER: Final = "http.request.header."
_RESPONSE_HEADER: Final = "http.response.header."
# The request event's fixed fields and what the queue's estimate counts for them (logging's
# estimate_event_bytes: per event, per field, the text of string values).
_REQUEST_EVENT_FIELDS: Final = 12
_FIELD_BYTES: Final = FIELD_BYTES
_REQUEST_EVENT_BYTES: Final = (
    EVENT_BYTES + FIELD_BYTES * _REQUEST_EVENT_FIELDS
    + len("request") + len("telemetry_web.request")
)  # fmt: skip


# Compiled (scripts/compile.py) as a class that Python code may extend: the mesh's does.
@mypyc_attr(allow_interpreted_subclasses=True)
class RequestLifecycle:
    def __init__(
        self,
        *,
        spans: SpanFactory | None,
        extractor: Extractor,
        http_metrics: HttpMetrics | None,
        pipeline: LogPipeline | None,
        request_log: bool,
        request_log_level: int,
        redact_query: QueryRedactor,
        request_id_header: str,
        capture_request_headers: Iterable[str] = (),
        capture_response_headers: Iterable[str] = (),
        redact_headers: Iterable[str] = (),
    ) -> None:
        self.spans = spans
        self.extractor = extractor
        self.http_metrics = http_metrics
        # The metrics' compiled table, when requests may record into it directly.
        self.metric_table: SlotTable | None = (
            http_metrics.request_table if http_metrics is not None else None
        )
        self.pipeline = pipeline if request_log else None
        self.log_threshold = request_log_level
        self.redact_query = redact_query
        self.request_id_header = request_id_header.lower()
        redacted = header_redactor(redact_headers)
        # (header name, attribute, recorded as REDACTED); the request id is recorded already.
        self.captured_request = tuple(
            (name, _REQUEST_HEADER + name, redacted(name))
            for name in dict.fromkeys(n.lower() for n in capture_request_headers)
            if name != self.request_id_header
        )
        # header name -> (attribute, recorded as REDACTED)
        self.captured_response = {
            name: (_RESPONSE_HEADER + name, redacted(name))
            for name in (n.lower() for n in capture_response_headers)
        }
        # The response headers an adapter should hand to `capture_response_headers` (if any).
        self.response_header_names = frozenset(self.captured_response)
        # The request headers an adapter should hand to `begin` (everything else is never read).
        self.wanted_headers = frozenset(
            {"host", "user-agent", "content-length", self.request_id_header}
            | extractor.header_names
            | {name for name, _, _ in self.captured_request}
        )

    def begin(
        self,
        *,
        method: str,
        scheme: str,
        path: str,
        query: str,
        route: str,
        headers: Mapping[str, str],
        client: str | None,
        server: ServerAddress | None = None,
        protocol_version: str | None = None,
        kind: str = "http",
    ) -> ActiveRequest:
        return ActiveRequest(
            self,
            method,
            scheme,
            path,
            query,
            route,
            headers,
            client,
            server,
            protocol_version,
            kind,
        )


class ActiveRequest:
    """One request between ``begin`` and ``finish``; adapters may still update ``route``."""

    __slots__ = (
        "_context_token",
        "_in_progress",
        "_scope_token",
        "client",
        "fields",
        "life",
        "method",
        "original_method",
        "path",
        "query",
        "request_id",
        "route",
        "span",
        "started",
        "user_agent",
    )

    def __init__(
        self,
        life: RequestLifecycle,
        method: str,
        scheme: str,
        path: str,
        query: str,
        route: str,
        headers: Mapping[str, str],
        client: str | None,
        server: ServerAddress | None,
        protocol_version: str | None,
        kind: str,
    ) -> None:
        self.started = _perf()
        self.life = life
        self.original_method = method
        self.method = method if method in sc.KNOWN_METHODS else "_OTHER"
        self.path = path
        self.query = life.redact_query(query) if query else ""
        self.route = route
        self.client = client
        self.user_agent = headers.get("user-agent")
        incoming_id = headers.get(life.request_id_header)
        self.request_id = (
            incoming_id
            if incoming_id is not None and _VALID_REQUEST_ID.match(incoming_id)
            # A correlation id, not a secret: os.urandom is a syscall costing tens of µs on
            # some virtual machines, getrandbits is not (and is reseeded after fork).
            else _getrandbits(128).to_bytes(16, "big").hex()
        )
        # What bind_context() adds, on every log line of the request (any thread or task).
        self.fields: dict[str, Any] = {}
        self._scope_token = CURRENT_REQUEST.set(self)
        self.span: trace.Span | None = None
        self._context_token: object | None = None
        if life.spans is not None:
            self._start_span(life, scheme, headers, server, protocol_version, kind)
        self._in_progress = None
        metrics = life.http_metrics
        if metrics is not None and kind == "http":
            # The gauge child's count: inc(1) now, inc(-1) in finish().
            table = life.metric_table
            # (Any: a multiprocess gauge value or an InProgress; compiled code checks types)
            counted: Any = table.started(self.method, route, scheme) if table is not None else None
            if counted is None:
                counted = metrics.in_progress_value(self.method, route, scheme)
                counted.inc(1)
            self._in_progress = counted

    def _start_span(
        self,
        life: RequestLifecycle,
        scheme: str,
        headers: Mapping[str, str],
        server: ServerAddress | None,
        protocol_version: str | None,
        kind: str,
    ) -> None:
        # The trust policy may restart an untrusted caller's trace (a new root, linked to it).
        parent, links = life.extractor.resolve(headers, self.client)
        # The attributes are built only for a span that records (or for a sampler reading them).
        span = life.spans.start(  # type: ignore[union-attr]
            self._span_name(), parent, _SERVER, None, links,
            self._span_attributes, life, scheme, headers, server, protocol_version, kind,
        )  # fmt: skip
        self.span = span
        self._context_token = attach_span(span, parent)

    def _span_attributes(
        self,
        life: RequestLifecycle,
        scheme: str,
        headers: Mapping[str, str],
        server: ServerAddress | None,
        protocol_version: str | None,
        kind: str,
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            sc.ATTR_HTTP_METHOD: self.method,
            sc.ATTR_URL_PATH: self.path,
            sc.ATTR_URL_SCHEME: scheme,
            sc.ATTR_REQUEST_ID: self.request_id,
        }
        if self.route != sc.ROUTE_UNMATCHED:
            attributes[sc.ATTR_HTTP_ROUTE] = self.route
        if self.method != self.original_method:
            attributes[sc.ATTR_HTTP_METHOD_ORIGINAL] = self.original_method
        if self.query:
            attributes[sc.ATTR_URL_QUERY] = self.query
        host = headers.get("host")
        if host:
            name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if name and port.isdigit():
                attributes[sc.ATTR_SERVER_ADDRESS] = name
                attributes[sc.ATTR_SERVER_PORT] = int(port)
            else:
                attributes[sc.ATTR_SERVER_ADDRESS] = host
        elif server is not None:
            attributes[sc.ATTR_SERVER_ADDRESS] = server[0]
            if server[1] is not None:
                attributes[sc.ATTR_SERVER_PORT] = server[1]
        if self.client:
            attributes[sc.ATTR_CLIENT_ADDRESS] = self.client
        if self.user_agent:
            attributes[sc.ATTR_USER_AGENT] = self.user_agent
        if protocol_version:
            attributes[sc.ATTR_NETWORK_PROTOCOL_VERSION] = protocol_version
        if kind == "websocket":
            attributes["network.protocol.name"] = "websocket"
        for name, attribute, redacted in life.captured_request:
            value = headers.get(name)
            if value is not None:
                attributes[attribute] = (sc.REDACTED if redacted else value,)
        return attributes

    def capture_response_headers(self, headers: Mapping[str, str]) -> None:
        """Record the captured response headers among ``headers`` (lower-case names)."""
        span = self.span
        if span is None or not span.is_recording():
            return
        captured = self.life.captured_response
        for name, value in headers.items():
            entry = captured.get(name)
            if entry is not None:
                span.set_attribute(entry[0], (sc.REDACTED if entry[1] else value,))

    def _span_name(self) -> str:
        method = "HTTP" if self.method == "_OTHER" else self.method
        return method if self.route == sc.ROUTE_UNMATCHED else f"{method} {self.route}"

    def finish(
        self,
        status: int,
        *,
        request_size: int = 0,
        response_size: int = 0,
        exception: BaseException | None = None,
        ended: float | None = None,
    ) -> None:
        """Record the outcome; ``ended`` is when the last response byte went out, if known."""
        end = ended if ended is not None else _perf()
        duration = end - self.started
        if duration < 0.0:
            duration = 0.0
        life = self.life
        metrics = life.http_metrics
        span = self.span
        trace_id = span_id = None
        exemplar = None
        if span is not None:
            context = span.get_span_context()
            trace_id = hex_id(context[0], 16)
            span_id = hex_id(context[1], 8)
            # (a SpanContext is a tuple: trace id, span id, remote, trace flags; sampled is 1)
            if context[3] & 1 and metrics is not None and metrics.exemplars:
                exemplar = {"trace_id": trace_id, "span_id": span_id}
            self._end_span(span, status, exception, end)
        if self._in_progress is not None:
            self._in_progress.inc(-1)
            table = life.metric_table
            if table is None or not table.record(
                self.method, self.route, status, duration, request_size, response_size, exemplar
            ):
                metrics.record(  # type: ignore[union-attr]
                    self.method, self.route, status, duration, request_size, response_size, exemplar
                )
        if life.pipeline is not None:
            self._log(status, duration, trace_id, span_id, exception)
        try:
            CURRENT_REQUEST.reset(self._scope_token)
        except ValueError:  # finished in another context (a streamed body); nothing to undo here
            pass

    def _end_span(
        self, span: trace.Span, status: int, exception: BaseException | None, end: float
    ) -> None:
        if not span.is_recording():  # sampled out (or ended already): nothing to record
            self.detach()
            return
        if exception is None and status < 500 and type(span) is RequestSpan:
            # The usual outcome on our own span: its route, name, status and end in one call.
            routed = self.route != sc.ROUTE_UNMATCHED
            span.end_request(
                self.route if routed else None,
                self._span_name() if routed else None,
                status,
                int((end - self.started) * 1e9),
            )
            self.detach()
            return
        if self.route != sc.ROUTE_UNMATCHED:
            span.set_attribute(sc.ATTR_HTTP_ROUTE, self.route)
            span.update_name(self._span_name())
        span.set_attribute(sc.ATTR_HTTP_STATUS, status)
        if exception is not None:
            span.record_exception(exception)
            span.set_attribute(sc.ATTR_ERROR_TYPE, sc.exception_type(type(exception)))
            # Scrubbed: a database error's text may carry statement literals.
            span.set_status(Status(StatusCode.ERROR, describe_exception(exception)))
        elif status >= 500:
            span.set_attribute(sc.ATTR_ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR))
        # SDK span times are epoch nanoseconds; `end` is on the perf_counter clock.
        start_ns = getattr(span, "start_time", None)
        span.end(end_time=start_ns + int((end - self.started) * 1e9) if start_ns else None)
        self.detach()

    def detach(self) -> None:
        """Make the request span no longer current; idempotent, and silent when called from
        another context than ``begin`` (a streamed body closed by the server's own task),
        where there is nothing of ours to undo."""
        token = self._context_token
        if token is None:
            return
        self._context_token = None
        var = getattr(token, "var", None)
        if var is None:  # a runtime context that is not contextvars-based
            otel_context.detach(token)  # type: ignore[arg-type]
            return
        try:
            var.reset(token)
        except (ValueError, RuntimeError):
            pass  # OpenTelemetry's detach() would log this at ERROR

    def _log(
        self,
        status: int,
        duration: float,
        trace_id: str | None,
        span_id: str | None,
        exception: BaseException | None,
    ) -> None:
        level, number = (
            ("error", 40) if status >= 500 or exception is not None
            else ("warning", 30) if status >= 400
            else ("info", 20)
        )  # fmt: skip
        if number < self.life.log_threshold:
            return
        pipeline: LogPipeline = self.life.pipeline  # type: ignore[assignment]
        # The line's own values in their final order (logging/_request_line.py): queued as is,
        # the writer dates and renders it and builds its dict only for a sink that reads events.
        query = self.query
        user_agent = self.user_agent
        client = self.client
        record = (
            time.time(), level, self.original_method, self.route, self.path, status,
            # round(ms, 3) without its decimal conversion (a third of the cost)
            int(duration * 1_000_000.0 + 0.5) / 1000,
            client, user_agent, self.request_id, query if query else None, trace_id, span_id,
        )  # fmt: skip
        if self.fields or exception is not None:
            # Fields bound to the request or an exception: the writer's general path (the
            # bound fields win over the static ones there).
            event = request_event(record, _NO_FIELDS)
            if exception is not None:
                event["exc_info"] = (type(exception), exception, exception.__traceback__)
            for key, value in self.fields.copy().items():
                event.setdefault(key, value)
            pipeline.submit(event)
            return
        # The queue's size estimate, as estimate_event_bytes() makes it for the event.
        size = (
            _REQUEST_EVENT_BYTES + len(level) + len(self.original_method) + len(self.route)
            + len(self.path) + len(self.request_id) + pipeline.static_bytes
            + (len(user_agent) if user_agent is not None else 0)
            + (len(client) if client is not None else 0)
        )  # fmt: skip
        if query:
            size += _FIELD_BYTES + len(query)
        if trace_id is not None:
            size += 2 * _FIELD_BYTES + len(trace_id) + len(span_id)  # type: ignore[arg-type]
        pipeline.submit_request(record, size)
