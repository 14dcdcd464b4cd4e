"""The OTLP log sink: events sent to an OpenTelemetry Collector as ``ExportLogsServiceRequest``.

The log writer thread turns each finished event (already redacted) into a ``LogRecord`` and
appends it to a bounded buffer; a sender thread of its own exports a request per
``batch_size`` records, or every ``flush_interval``: ``POST <endpoint>/v1/logs`` with a
protobuf body (``protocol: http/protobuf``, over one kept-alive connection) or
``LogsService/Export`` (``protocol: grpc``). Needs the ``otlp`` extra.

Each record carries:

- ``time_unix_nano`` from the event's timestamp (millisecond precision, as the JSON lines), and
  ``observed_time_unix_nano`` when the sink received it;
- ``severity_number`` from the level (``debug`` DEBUG 5, ``info`` INFO 9, ``warning`` WARN 13,
  ``error`` ERROR 17, ``critical`` FATAL 21) and ``severity_text`` its upper-case name, as the
  standard library's ``levelname`` (``WARNING``);
- the event message as the ``body`` string;
- ``trace_id``/``span_id`` as the binary ids of the span the line was logged in, so the
  Collector and its backends link the record to the span;
- every other field as an attribute under its own name: nested dicts as ``kvlist`` values,
  lists and tuples as ``array`` values, ``None`` left out; the exception as
  ``exception.type``, ``exception.message`` and ``exception.stacktrace`` (OpenTelemetry's
  names). ``service`` and ``environment`` are on the resource, and left out when they are the
  same.

The resource is the spans' (``tracing/_provider.py`` ``build_resource``: ``service.name``,
``deployment.environment``, ``process.pid``, ``service.instance.id``, ...), the scope is
``telemetry_web``.

Failures, as the Elasticsearch sink's: refused connections, timeouts, HTTP 429/502/503/504
and the gRPC codes OpenTelemetry calls retryable (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ...;
``RESOURCE_EXHAUSTED`` only with ``RetryInfo``) are retried after a backoff period (doubled from
``backoff`` to ``max_backoff``, or the server's ``Retry-After``/``RetryInfo``); other answers
(400, ``INVALID_ARGUMENT``) and the records a partial success rejects are dropped, counted as
``rejected``. One ``telemetry-web: Log shipping failed: otlp ...`` line per 30 s. The buffer
holds ``max_buffer`` records or ``max_buffer_bytes`` encoded bytes (the batch in flight
included); past that, ``buffer_full``. Left over at close: ``shutdown``.
"""

from __future__ import annotations

import calendar
import os
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import __version__
from .._forksafe import register_at_fork
from ..errors import MissingExtraError
from ._levels import LEVELS
from ._otlp_transport import (
    GRPC_PORT,
    HTTP_PORT,
    GrpcTransport,
    HttpTransport,
    Rejected,
    Retry,
    grpc_modules,
    where,
)
from ._shipping import Backoff, stderr

__all__ = ["OtlpLogSink"]

_SCOPE = "telemetry_web"
# Our level -> (SeverityNumber, severity text).
_SEVERITY = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warning": (13, "WARNING"),
             "error": (17, "ERROR"), "critical": (21, "CRITICAL")}  # fmt: skip
_SEVERITY_BY_NUMBER = {LEVELS[name]: value for name, value in _SEVERITY.items()}
_RECORD_FIELDS = frozenset({"timestamp", "level", "event"})
_EXCEPTION_KEYS = {"type": "exception.type", "message": "exception.message",
                   "stack": "exception.stacktrace"}  # fmt: skip
_MAX_DEPTH = 20
_INT64 = (-(2**63), 2**63 - 1)


def _proto() -> Any:
    """The opentelemetry-proto modules, or MissingExtraError naming the extra."""
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.logs.v1 import logs_pb2
        from opentelemetry.proto.resource.v1 import resource_pb2
    except ImportError:
        raise MissingExtraError(
            "logging.sinks.otlp", "opentelemetry-exporter-otlp", "otlp"
        ) from None

    class Proto:
        service, common, logs, resource = logs_service_pb2, common_pb2, logs_pb2, resource_pb2

    return Proto


class OtlpLogSink:
    """Ships events to an OTLP logs endpoint; see the module docstring.

    Args:
        endpoint: the Collector, ``http[s]://host:port`` (``/v1/logs`` is added for HTTP
            unless given); None: ``http://localhost:4318`` (HTTP) or ``:4317`` (gRPC).
        dropped: ``telemetry_log_events_dropped_total`` (``labels(sink, reason).inc(n)``).
        resource: the OpenTelemetry ``Resource`` of the spans.
        report: where the ``Log shipping failed`` lines go (stderr by default).

    Raises:
        MissingExtraError: the ``otlp`` extra is not installed.
        ValueError: the endpoint is not an http(s) URL.
    """

    name = "otlp"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        dropped: Any,
        resource: Any,
        protocol: str = "http/protobuf",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        batch_size: int = 512,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self._pb = _proto()
        self.protocol = protocol
        grpc = protocol == "grpc"
        if grpc:
            grpc_modules()  # a missing grpcio is reported now
        self.url = _endpoint_url(endpoint, grpc=grpc)
        self._headers = dict(headers or {})
        self.timeout = timeout
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_buffer_bytes = max_buffer_bytes
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._dropped = dropped
        self._report = report or stderr
        self._resource = resource
        self._encoded_resource: tuple[int, Any] = (0, None)  # (pid, Resource message)
        self._scope = self._pb.common.InstrumentationScope(name=_SCOPE, version=__version__)
        self._second: tuple[str, int] = ("", 0)  # (ISO second, its epoch seconds)
        self.where = where(self.url)
        self._stopped = False
        self._start()
        register_at_fork(after_in_child=self._after_fork_in_child)

    def _transport(self, url: str) -> HttpTransport | GrpcTransport:
        if self.protocol == "grpc":
            return GrpcTransport(url, self._headers, self.timeout, self._pb)
        return HttpTransport(url, self._headers, self.timeout, self._pb)

    def _start(self) -> None:
        self._buffer: deque[tuple[Any, int]] = deque()  # (LogRecord, encoded size)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # buffer emptied, batch sent or failed
        self._wake = threading.Event()
        self._in_flight = 0
        self._bytes = 0  # of the buffer and the batch in flight
        self._abandoned = False  # close() counted the batch in flight as dropped
        self._closing = False
        self._flush_now = False
        self._close_deadline = float("inf")
        self._backoff = Backoff(
            self.name,
            where(self.url),
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            report=self._report,
        )
        self._sender = self._transport(self.url)  # the child's own connection or channel
        self._thread = threading.Thread(target=self._run, name="telemetry-logs-otlp", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent ships what it had buffered; the child starts empty, on its own connection.
        if not self._stopped:
            self._start()

    # --- the log writer thread ----------------------------------------------------------------

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        if self._stopped:  # the log writer outlived close(): nothing will ship these
            self._dropped.labels(self.name, "shutdown").inc(len(events))
            return
        observed = time.time_ns()
        attributes = self._resource.attributes
        on_resource = {
            "service": attributes.get("service.name"),
            "environment": attributes.get("deployment.environment"),
        }
        items = []
        for event in events:
            record = self._record(event, observed, on_resource)
            items.append((record, record.ByteSize()))
        with self._lock:
            room = self.max_buffer - len(self._buffer) - self._in_flight
            accepted = items if len(items) <= room else items[: max(0, room)]
            room_bytes = self.max_buffer_bytes - self._bytes
            size = 0
            for count, (_record, item_size) in enumerate(accepted):
                if size + item_size > room_bytes:
                    accepted = accepted[:count]
                    break
                size += item_size
            self._buffer.extend(accepted)
            self._bytes += size
            ready = len(self._buffer) >= self.batch_size
        if len(accepted) < len(items):
            self._dropped.labels(self.name, "buffer_full").inc(len(items) - len(accepted))
        if ready:
            self._wake.set()

    def _record(self, event: dict[str, Any], observed: int, on_resource: dict[str, Any]) -> Any:
        """The ``LogRecord`` of one event; one that cannot be encoded becomes a record saying
        so (its message and the error)."""
        try:
            return self._encode(event, observed, on_resource)
        except Exception as exc:
            message = _text(str(event.get("event", "")))
            return self._pb.logs.LogRecord(
                observed_time_unix_nano=observed,
                body=self._pb.common.AnyValue(string_value=message),
                attributes=[_kv(self._pb, "encode_error", f"{type(exc).__name__}: {exc}")],
            )

    def _encode(self, event: dict[str, Any], observed: int, on_resource: dict[str, Any]) -> Any:
        pb = self._pb
        level = event.get("level")
        number, text = _severity(level)
        record = pb.logs.LogRecord(
            time_unix_nano=self._time_ns(event.get("timestamp")),
            observed_time_unix_nano=observed,
            severity_number=number,
            severity_text=text,
            body=_any(pb, event.get("event", ""), 0),
        )
        attributes = record.attributes
        trace_id, span_id = _ids(event.get("trace_id"), event.get("span_id"))
        if trace_id is not None and span_id is not None:
            record.trace_id, record.span_id = trace_id, span_id
            skip = {"trace_id", "span_id"}
        else:
            skip = set()
        for key, value in event.items():
            if value is None or key in _RECORD_FIELDS or key in skip:
                continue
            if key == "exception" and isinstance(value, dict):
                for name, attribute in _EXCEPTION_KEYS.items():
                    if value.get(name) is not None:
                        attributes.append(_kv(pb, attribute, value[name]))
                continue
            if key in on_resource and on_resource[key] == value:
                continue
            attributes.append(_kv(pb, str(key), value))
        return record

    def _time_ns(self, stamp: Any) -> int:
        """Epoch nanoseconds of ``2026-11-29T22:18:10.883Z`` (the pipeline's timestamps); 0,
        OTLP's "unknown", for anything else."""
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return int(stamp * 1e9)
        if not isinstance(stamp, str) or len(stamp) < 20 or stamp[-1] != "Z":
            return 0
        second = stamp[:19]
        if self._second[0] != second:
            try:
                epoch = calendar.timegm(time.strptime(second, "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                return 0
            self._second = (second, epoch)
        fraction = stamp[20:-1] if stamp[19] == "." else ""
        if not fraction.isdigit() and fraction:
            return 0
        nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
        return self._second[1] * 1_000_000_000 + nanos

    # --- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + self.flush_interval
        backoff = self._backoff
        while True:
            with self._lock:
                closing = self._closing
                waiting = len(self._buffer)
                if not waiting:
                    self._flush_now = False
            now = time.monotonic()
            due = now >= next_tick or self._flush_now or backoff.failures > 0
            if closing or (
                waiting and now >= backoff.retry_at and (due or waiting >= self.batch_size)
            ):
                self._flush_now = False
                self._ship_all(final=closing, partial=closing or due)
                if closing:
                    return
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.flush_interval
            until = backoff.retry_at if backoff.retry_at > now else next_tick
            self._wake.wait(max(0.0, until - now))
            self._wake.clear()

    def _ship_all(self, *, final: bool, partial: bool) -> None:
        """Export full batches, and the last partial one when ``partial``, until the buffer is
        empty or an attempt fails."""
        while True:
            with self._lock:
                if not self._buffer or (not partial and len(self._buffer) < self.batch_size):
                    self._changed.notify_all()
                    return
                count = min(len(self._buffer), self.batch_size)
                batch = [self._buffer.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                rejected, message = self._sender.export(self._request(batch))
            except Retry as exc:
                if self._requeue(batch):
                    with self._lock:
                        waiting = len(self._buffer)
                    self._backoff.failed(str(exc), waiting, exc.retry_after)
                return
            except Rejected as exc:
                rejected, message = len(batch), str(exc)
            self._backoff.succeeded()
            with self._lock:
                self._in_flight = 0
                abandoned = self._abandoned
                if not abandoned:
                    self._bytes -= sum(size for _record, size in batch)
                self._changed.notify_all()
            if rejected and not abandoned:
                self._dropped.labels(self.name, "rejected").inc(rejected)
                self._backoff.dropped(rejected, message)
            if final and time.monotonic() >= self._close_deadline:
                return

    def _request(self, batch: list[tuple[Any, int]]) -> Any:
        pb = self._pb
        scope_logs = pb.logs.ScopeLogs(scope=self._scope, log_records=[r for r, _ in batch])
        resource_logs = pb.logs.ResourceLogs(resource=self._resource_message())
        resource_logs.scope_logs.append(scope_logs)
        return pb.service.ExportLogsServiceRequest(resource_logs=[resource_logs])

    def _resource_message(self) -> Any:
        """The resource, encoded once per process (a forked worker has its own pid)."""
        pid = os.getpid()
        if self._encoded_resource[0] != pid:
            pb = self._pb
            attributes = [_kv(pb, k, v) for k, v in self._resource.attributes.items()]
            self._encoded_resource = (pid, pb.resource.Resource(attributes=attributes))
        return self._encoded_resource[1]

    def _requeue(self, batch: list[tuple[Any, int]]) -> bool:
        """Put ``batch`` back in front; False when close() has counted it as dropped."""
        with self._lock:
            self._in_flight = 0
            self._changed.notify_all()
            if self._abandoned:
                return False
            self._buffer.extendleft(reversed(batch))
            return True

    # --- flush and close ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask for the buffer to be exported now and wait (up to ``timeout``) until it is;
        False when records are still waiting (the Collector is away: they stay buffered)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._backoff.try_now()
            self._flush_now = True
        self._wake.set()
        with self._lock:
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._changed.wait(min(left, 0.1))
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """One last attempt to export the buffer (within ``timeout``), then stop; what could
        not be exported is counted as dropped with reason ``shutdown``."""
        if self._stopped:
            return
        self._stopped = True
        self._close_deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
        self._wake.set()
        # The last moments of the budget are for counting: the caller's deadline is ours.
        self._thread.join(max(0.0, timeout - min(0.1, timeout * 0.8)))
        with self._lock:
            left = len(self._buffer) + self._in_flight
            self._buffer.clear()
            self._abandoned = self._in_flight > 0
            self._bytes = 0
        if left:
            self._dropped.labels(self.name, "shutdown").inc(left)
        # An export blocked on a hung Collector fails now instead of at its timeout, and no
        # answer can arrive for a batch counted as dropped.
        self._sender.abort()
        if left:
            self._backoff.not_shipped(left)
        self._sender.close()


# --- encoding ---------------------------------------------------------------------------------


def _endpoint_url(endpoint: str | None, *, grpc: bool) -> str:
    """The URL the transport uses: the HTTP one ends in ``/v1/logs``."""
    if not endpoint:
        endpoint = f"http://localhost:{GRPC_PORT if grpc else HTTP_PORT}"
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {endpoint!r}")
    if grpc:
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/logs"):
        path += "/v1/logs"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _severity(level: Any) -> tuple[int, str]:
    if isinstance(level, str):
        found = _SEVERITY.get(level.lower())
        return found if found is not None else (0, level)
    if isinstance(level, int) and level in _SEVERITY_BY_NUMBER:
        return _SEVERITY_BY_NUMBER[level]
    return 0, "" if level is None else str(level)


def _ids(trace_id: Any, span_id: Any) -> tuple[bytes | None, bytes | None]:
    """The binary ids of the hex ``trace_id`` (32 digits) and ``span_id`` (16), or None."""
    if not (isinstance(trace_id, str) and isinstance(span_id, str)):
        return None, None
    if len(trace_id) != 32 or len(span_id) != 16:
        return None, None
    try:
        return bytes.fromhex(trace_id), bytes.fromhex(span_id)
    except ValueError:
        return None, None


def _text(value: str) -> str:
    """``value`` as protobuf takes it: UTF-8 (lone surrogates escaped)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _kv(pb: Any, key: str, value: Any) -> Any:
    return pb.common.KeyValue(key=_text(key), value=_any(pb, value, 0))


def _any(pb: Any, value: Any, depth: int) -> Any:
    """One value as an ``AnyValue``: strings, booleans, 64-bit integers, floats and bytes as
    themselves, mappings as ``kvlist`` (None values left out), sequences as ``array``,
    anything else (or nested deeper than 20) as its ``str``."""
    common = pb.common
    if isinstance(value, str):
        return common.AnyValue(string_value=_text(value))
    if isinstance(value, bool):
        return common.AnyValue(bool_value=value)
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return common.AnyValue(int_value=value)
        return common.AnyValue(string_value=str(value))
    if isinstance(value, float):
        return common.AnyValue(double_value=value)
    if isinstance(value, bytes | bytearray):
        return common.AnyValue(bytes_value=bytes(value))
    if value is None:
        return common.AnyValue()
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            pairs = [
                common.KeyValue(key=_text(str(k)), value=_any(pb, v, depth + 1))
                for k, v in value.items()
                if v is not None
            ]
            return common.AnyValue(kvlist_value=common.KeyValueList(values=pairs))
        if isinstance(value, list | tuple | set | frozenset):
            values = [_any(pb, v, depth + 1) for v in value]
            return common.AnyValue(array_value=common.ArrayValue(values=values))
    return common.AnyValue(string_value=_text(str(value)))
