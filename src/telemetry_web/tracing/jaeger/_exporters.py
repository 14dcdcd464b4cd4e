"""The two ways into a Jaeger older than 1.35: the collector's HTTP endpoint and the agent's UDP
port. Both sit behind a :class:`~telemetry_web.tracing._batch.BoundedBatchProcessor`, which
retries, reports failures once per period and counts what is dropped."""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._convert import group_by_resource, to_jaeger_process, to_jaeger_span
from ._thrift import Process, batch_body, emit_batch_message, encode, list_header_size

__all__ = ["JaegerAgentExporter", "JaegerCollectorExporter", "collector_url"]

# Not the exporter's module logger: the batch processor absorbs that one on its thread.
_log = logging.getLogger("telemetry_web.tracing")

COLLECTOR_PATH = "/api/traces"
COLLECTOR_TIMEOUT = 10.0  # seconds, unless tracing.batch.export_timeout is shorter
# The largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP header).
MAX_UDP_PAYLOAD = 65507


def collector_url(endpoint: str) -> str:
    """The collector URL to POST to: ``/api/traces`` added to a URL with no path.

    Raises:
        ValueError: ``endpoint`` is not an http:// or https:// URL.
    """
    try:
        parts = urlsplit(endpoint)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"expected an http:// or https:// URL, got {endpoint!r}")
    path = parts.path if parts.path not in ("", "/") else COLLECTOR_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class JaegerCollectorExporter(SpanExporter):
    """``POST /api/traces`` with a Thrift binary ``Batch`` body (``application/x-thrift``).

    Args:
        endpoint: the collector, e.g. ``http://jaeger-collector:14268`` (``/api/traces`` is
            added when the URL has no path). ``user:password@`` in it is sent as Basic auth and
            kept out of every message.
        timeout: seconds for connecting and for the response.

    A connection per export: batches leave at most once per schedule delay, and a fresh
    connection never fails on a keep-alive the collector has already closed.
    """

    def __init__(self, endpoint: str, *, timeout: float = COLLECTOR_TIMEOUT) -> None:
        url = collector_url(endpoint)
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/x-thrift"}
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(credentials.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        netloc = parts.netloc.rpartition("@")[2]
        self.endpoint = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.timeout = timeout
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        for resource, group in group_by_resource(spans):
            encoded = [encode(to_jaeger_span(span), compact=False) for span in group]
            self._post(batch_body(to_jaeger_process(resource), encoded))
        return SpanExportResult.SUCCESS

    def _post(self, body: bytes) -> None:
        connection_class = (
            http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        )
        connection = connection_class(self._host, self._port, timeout=self.timeout)
        try:
            with suppress_instrumentation():  # our own request is not a span of the app
                connection.request("POST", self._target, body=body, headers=self._headers)
                response = connection.getresponse()
                response.read()
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status} from {self.endpoint}")

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class JaegerAgentExporter(SpanExporter):
    """``Agent.emitBatch`` oneway messages in the Thrift compact protocol, one per UDP datagram.

    A batch is split so that no datagram exceeds ``max_packet_size`` bytes; a span too large to
    fit in a datagram by itself is dropped, passed to ``too_large`` (which counts it) and
    reported at most once per 30 seconds.

    Args:
        host, port: the agent (``6831`` is its compact-protocol port).
        max_packet_size: the largest datagram to send, in bytes.
        too_large: called with the number of spans dropped as too large.
    """

    REPORT_PERIOD = 30.0

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6831,
        max_packet_size: int = 65000,
        *,
        too_large: Callable[[int], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_packet_size = max_packet_size
        self.endpoint = f"udp://[{host}]:{port}" if ":" in host else f"udp://{host}:{port}"
        self._too_large = too_large
        self._socket: socket.socket | None = None
        self._closed = False
        self._last_report = float("-inf")
        self._unreported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        address: tuple[Any, ...] | None = None
        for resource, group in group_by_resource(spans):
            encoded = [(span.name, encode(to_jaeger_span(span), compact=True)) for span in group]
            for packet in self.packets(to_jaeger_process(resource), encoded):
                if address is None:  # resolved once per export: DNS changes are followed
                    address = self._resolve()
                self._send(packet, address)
        return SpanExportResult.SUCCESS

    def packets(self, process: Process, spans: Sequence[tuple[str, bytes]]) -> Iterator[bytes]:
        """``emitBatch`` messages of at most ``max_packet_size`` bytes, from ``(name, span
        encoded in the compact protocol)`` pairs, in order; spans that fit nowhere are dropped."""
        limit = self.max_packet_size
        # The message with an empty span list, less that list's one-byte header.
        base = len(emit_batch_message(process, ())) - 1
        packet: list[bytes] = []
        size = 0
        for name, span in spans:
            if base + list_header_size(1) + len(span) > limit:
                self._drop_too_large(name, base + list_header_size(1) + len(span))
                continue
            if packet and base + list_header_size(len(packet) + 1) + size + len(span) > limit:
                yield emit_batch_message(process, packet)
                packet, size = [], 0
            packet.append(span)
            size += len(span)
        if packet:
            yield emit_batch_message(process, packet)

    def _drop_too_large(self, name: str, needed: int) -> None:
        if self._too_large is not None:
            self._too_large(1)
        self._unreported += 1
        now = time.monotonic()
        if now - self._last_report >= self.REPORT_PERIOD:
            _log.warning(
                "Jaeger agent: span %r needs a %d-byte packet, over max_packet_size %d "
                "(tracing.exporters.jaeger.agent.max_packet_size); %d spans dropped as too large "
                "since the last report (counted in telemetry_spans_dropped_total, reason "
                "too_large)",
                name,
                needed,
                self.max_packet_size,
                self._unreported,
            )
            self._last_report = now
            self._unreported = 0

    def _resolve(self) -> tuple[Any, ...]:
        found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = found[0]
        sock = self._socket
        if sock is None or sock.family != family:
            if sock is not None:
                sock.close()
            self._socket = socket.socket(family, socket.SOCK_DGRAM)
        return tuple(address)

    def _send(self, packet: bytes, address: tuple[Any, ...]) -> None:
        assert self._socket is not None
        self._socket.sendto(packet, address)

    def shutdown(self) -> None:
        self._closed = True
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
