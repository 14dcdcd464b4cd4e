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
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import __version__
from ..errors import MissingExtraError
from ._levels import LEVELS
from ._otlp_transport import (
    GRPC_PORT,
    HTTP_PORT,
    GrpcTransport,
    HttpTransport,
    Rejected,
    grpc_modules,
    where,
)
from ._shipping import Item, ShippingSink

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


class OtlpLogSink(ShippingSink):
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
    thread_name = "telemetry-logs-otlp"
    _sender: HttpTransport | GrpcTransport

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
        self._resource = resource
        self._encoded_resource: tuple[int, Any] = (0, None)  # (pid, Resource message)
        self._scope = self._pb.common.InstrumentationScope(name=_SCOPE, version=__version__)
        self._second: tuple[str, int] = ("", 0)  # (ISO second, its epoch seconds)
        super().__init__(
            where(self.url), dropped=dropped, batch_size=batch_size,
            flush_interval=flush_interval, max_buffer=max_buffer,
            max_buffer_bytes=max_buffer_bytes, backoff=backoff, max_backoff=max_backoff,
            report=report,
        )  # fmt: skip

    def _connect(self) -> HttpTransport | GrpcTransport:
        if self.protocol == "grpc":
            return GrpcTransport(self.url, self._headers, self.timeout, self._pb)
        return HttpTransport(self.url, self._headers, self.timeout, self._pb)

    # --- the log writer thread ----------------------------------------------------------------

    def _encode(self, events: Sequence[dict[str, Any]]) -> list[Item]:
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
        return items

    def _record(self, event: dict[str, Any], observed: int, on_resource: dict[str, Any]) -> Any:
        """The ``LogRecord`` of one event; one that cannot be encoded becomes a record saying
        so (its message and the error)."""
        try:
            return self._log_record(event, observed, on_resource)
        except Exception as exc:
            message = _text(str(event.get("event", "")))
            return self._pb.logs.LogRecord(
                observed_time_unix_nano=observed,
                body=self._pb.common.AnyValue(string_value=message),
                attributes=[_kv(self._pb, "encode_error", f"{type(exc).__name__}: {exc}")],
            )

    def _log_record(self, event: dict[str, Any], observed: int, on_resource: dict[str, Any]) -> Any:
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

    def _send(self, batch: list[Item]) -> tuple[list[Item], int, str]:
        try:
            rejected, message = self._sender.export(self._request(batch))
        except Rejected as exc:
            return [], len(batch), str(exc)
        return [], rejected, message

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
