"""Loopback trace receivers that decode the real wire formats with independent libraries.

- :class:`OtlpReceiver`: OTLP over HTTP/protobuf, decoded with ``opentelemetry-proto``.
- :class:`OtlpMetricsReceiver` and :class:`OtlpGrpcMetricsReceiver`: OTLP metrics over
  HTTP/protobuf and over gRPC (a real ``grpcio`` server), decoded with ``opentelemetry-proto``.
- :class:`ZipkinReceiver`: Zipkin v2 JSON, checked against a schema written from Zipkin's
  published v2 API definition (zipkin2-api.yaml, ``ListOfSpans``/``Span``/``Endpoint``).
- :class:`JaegerCollectorReceiver` and :class:`JaegerAgentReceiver`: loopback receivers standing
  in for Jaeger's collector (``POST /api/traces``, Thrift binary ``Batch``) and agent (UDP,
  Thrift compact ``Agent.emitBatch``), decoded by ``_thrift_decoder``, which is written from the
  Thrift protocol specifications and the jaeger-idl field table, not with the ``thrift`` library.
- :class:`OtlpLogsReceiver` and :class:`OtlpGrpcLogsReceiver`: OTLP logs over HTTP/protobuf and
  over gRPC (a real ``grpcio`` server, :class:`OtlpGrpcReceiver`), decoded with
  ``opentelemetry-proto``.
- Each HTTP receiver runs a real HTTP server on 127.0.0.1 in a thread (on a given ``port`` if
  asked); ``hold()`` makes it sit on requests until ``release()``, ``status`` makes it answer
  with an error (with ``retry_after`` as ``Retry-After``), ``answer`` is a success's body.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ._thrift_decoder import decode_batch_binary, decode_emit_batch

_R = TypeVar("_R", bound="_Receiver")


class _Receiver:
    path = "/"

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []  # per accepted request, names lower-cased
        self.status = 200
        self.attempts = 0  # requests received, whatever the answer
        self.retry_after: str | None = None  # sent with an error status when set
        self.answer = b""  # the body of a successful answer
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.attempts += 1
                    receiver.received.notify_all()
                receiver._released.wait(60)
                with receiver._lock:
                    status = receiver.status
                    if status < 300:
                        receiver.bodies.append(body)
                        receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    receiver.received.notify_all()
                answer = receiver.answer if status < 300 else b""
                self.send_response(status)
                if status >= 300 and receiver.retry_after is not None:
                    self.send_header("retry-after", receiver.retry_after)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self: _R) -> _R:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._lock:
            return self.received.wait_for(predicate, timeout)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(pairs: Iterator[KeyValue] | Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class OtlpReceiver(_Receiver):
    """``POST /v1/traces`` with an ``ExportTraceServiceRequest`` protobuf body."""

    path = "/v1/traces"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every received span with its resource attributes: ``(resource, span)``."""
        found: list[tuple[dict[str, Any], Any]] = []
        with self._lock:
            bodies = list(self.bodies)
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found.extend((resource, span) for span in scope_spans.spans)
        return found

    def count(self) -> int:
        return len(self.spans())


def metric_points(request: Any) -> dict[str, tuple[Any, list[tuple[dict[str, Any], Any]]]]:
    """An ``ExportMetricsServiceRequest`` as ``{name: (metric, [(attributes, point), ...])}``."""
    found: dict[str, tuple[Any, list[tuple[dict[str, Any], Any]]]] = {}
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = getattr(metric, metric.WhichOneof("data"))
                points = [(attributes(p.attributes), p) for p in data.data_points]
                assert metric.name not in found, f"{metric.name} sent twice"
                found[metric.name] = (metric, points)
    return found


class OtlpMetricsReceiver(_Receiver):
    """``POST /v1/metrics`` with an ``ExportMetricsServiceRequest`` protobuf body."""

    path = "/v1/metrics"

    def requests(self) -> list[Any]:
        """Every accepted request, decoded (takes no lock, so it can be used in ``wait_for``)."""
        return [ExportMetricsServiceRequest.FromString(body) for body in list(self.bodies)]


# --- Zipkin v2 --------------------------------------------------------------------------------
# From zipkin2-api.yaml (openzipkin/zipkin-api): Span.traceId is 16 or 32 lower-hex characters,
# id and parentId 16; kind is one of CLIENT, SERVER, PRODUCER, CONSUMER; timestamp and duration
# are integer microseconds (duration >= 1); localEndpoint/remoteEndpoint are Endpoint objects
# (serviceName lowercase string, ipv4 dotted quad, ipv6, port integer); annotations are
# {timestamp, value} objects; tags is a string-to-string map; debug and shared are booleans.
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TRACE_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32})$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_SPAN_KEYS = {"traceId", "name", "parentId", "id", "kind", "timestamp", "duration", "debug",
              "shared", "localEndpoint", "remoteEndpoint", "annotations", "tags"}  # fmt: skip
_ENDPOINT_KEYS = {"serviceName", "ipv4", "ipv6", "port"}


def check_zipkin_span(span: Any) -> list[str]:
    """Schema problems of one span against the Zipkin v2 ``Span`` definition (empty if none)."""
    problems: list[str] = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    need(isinstance(span, dict), "span is not an object")
    if not isinstance(span, dict):
        return problems
    need(set(span) <= _SPAN_KEYS, f"unknown keys {set(span) - _SPAN_KEYS}")
    need(isinstance(span.get("traceId"), str) and bool(_TRACE_ID.match(span["traceId"])),
         "traceId")  # fmt: skip
    need(isinstance(span.get("id"), str) and bool(_HEX16.match(span["id"])), "id")
    if "parentId" in span:
        need(isinstance(span["parentId"], str) and bool(_HEX16.match(span["parentId"])),
             "parentId")  # fmt: skip
    if "name" in span:
        need(isinstance(span["name"], str), "name")
    if "kind" in span:
        need(span["kind"] in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER"), "kind")
    for key in ("timestamp", "duration"):
        if key in span:
            need(isinstance(span[key], int) and span[key] >= (1 if key == "duration" else 0), key)
    for key in ("debug", "shared"):
        if key in span:
            need(isinstance(span[key], bool), key)
    for key in ("localEndpoint", "remoteEndpoint"):
        if key in span:
            endpoint = span[key]
            need(isinstance(endpoint, dict) and set(endpoint) <= _ENDPOINT_KEYS, key)
            if isinstance(endpoint, dict):
                if "serviceName" in endpoint:
                    need(isinstance(endpoint["serviceName"], str), f"{key}.serviceName")
                if "ipv4" in endpoint:
                    need(bool(_IPV4.match(str(endpoint["ipv4"]))), f"{key}.ipv4")
                if "port" in endpoint:
                    need(isinstance(endpoint["port"], int), f"{key}.port")
    if "annotations" in span:
        need(isinstance(span["annotations"], list), "annotations")
        for annotation in span.get("annotations") or []:
            need(isinstance(annotation, dict) and set(annotation) == {"timestamp", "value"}
                 and isinstance(annotation["timestamp"], int)
                 and isinstance(annotation["value"], str), "annotation")  # fmt: skip
    if "tags" in span:
        tags = span["tags"]
        need(isinstance(tags, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in tags.items()), "tags")  # fmt: skip
    return problems


class ZipkinReceiver(_Receiver):
    """``POST /api/v2/spans`` with a JSON ``ListOfSpans`` body."""

    path = "/api/v2/spans"

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            bodies = list(self.bodies)
        found: list[dict[str, Any]] = []
        for body in bodies:
            listed = json.loads(body)
            assert isinstance(listed, list), "ListOfSpans is an array"
            found.extend(listed)
        return found


# --- Jaeger ------------------------------------------------------------------------------------


class JaegerCollectorReceiver(_Receiver):
    """A loopback receiver standing in for the Jaeger collector's HTTP endpoint: ``POST
    /api/traces`` with a Thrift binary ``Batch`` body, answered ``202 Accepted`` as Jaeger does."""

    path = "/api/traces"

    def __init__(self) -> None:
        super().__init__()
        self.status = 202

    def batches(self) -> list[dict[str, Any]]:
        """Every received ``Batch``, decoded and checked against the IDL (takes no lock, so it
        can be used in ``wait_for``)."""
        return [decode_batch_binary(body) for body in list(self.bodies)]

    def spans(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every received span with its batch's process: ``(process, span)``."""
        return [(b["process"], span) for b in self.batches() for span in b["spans"]]


class JaegerAgentReceiver:
    """A loopback receiver standing in for the Jaeger agent: a UDP socket on 127.0.0.1 whose
    datagrams are Thrift compact ``Agent.emitBatch`` oneway messages."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.packets: list[bytes] = []
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.packets.append(packet)
                self.received.notify_all()

    def __enter__(self) -> JaegerAgentReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._lock:
            return self.received.wait_for(predicate, timeout)

    def messages(self) -> list[tuple[str, int, int, dict[str, Any]]]:
        """Every datagram decoded as a message: ``(name, type, seqid, arguments)`` (takes no
        lock, so it can be used in ``wait_for``)."""
        return [decode_emit_batch(packet) for packet in list(self.packets)]

    def batches(self) -> list[dict[str, Any]]:
        found = []
        for name, message_type, _, args in self.messages():
            assert (name, message_type) == ("emitBatch", 4), (name, message_type)  # 4: ONEWAY
            found.append(args["batch"])
        return found

    def spans(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(b["process"], span) for b in self.batches() for span in b["spans"]]


# --- OTLP logs ----------------------------------------------------------------------------------


def log_records(request: Any) -> list[tuple[dict[str, Any], Any, Any]]:
    """An ``ExportLogsServiceRequest``'s records: ``(resource attributes, scope, record)``."""
    return [
        (attributes(resource_logs.resource.attributes), scope_logs.scope, record)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


class OtlpLogsReceiver(_Receiver):
    """``POST /v1/logs`` with an ``ExportLogsServiceRequest`` protobuf body."""

    path = "/v1/logs"

    def requests(self) -> list[Any]:
        """Every accepted request, decoded (takes no lock, so it can be used in ``wait_for``)."""
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )

        return [ExportLogsServiceRequest.FromString(body) for body in list(self.bodies)]

    def records(self) -> list[tuple[dict[str, Any], Any, Any]]:
        return [found for request in self.requests() for found in log_records(request)]


class OtlpGrpcReceiver:
    """A real ``grpcio`` server on 127.0.0.1 answering one OTLP ``<service>/Export``.

    ``script``: the status code names (``"UNAVAILABLE"``, ``"INVALID_ARGUMENT"``) to answer
    the next calls with, then ``default`` (``"OK"``); ``retry_delay``: seconds sent as a
    ``google.rpc.RetryInfo`` with an error; ``hang`` makes a call wait until ``release()``;
    ``response``: the answer to accepted calls. Accepted requests and every call's
    ``(monotonic time, code, metadata)`` are recorded.
    """

    def __init__(self, service: str, request_type: Any, response: Any) -> None:
        from concurrent import futures

        import grpc  # type: ignore[import-untyped]  # as in src: no stubs installed

        self.script: list[str] = []
        self.default = "OK"
        self.retry_delay: float | None = None
        self.hang = False
        self.response = response
        self.calls: list[tuple[float, str, dict[str, str]]] = []
        self.accepted: list[Any] = []
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        self._grpc = grpc
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=request_type.FromString,
            response_serializer=lambda answer: answer.SerializeToString(),
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"Export": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _export(self, request: Any, context: Any) -> Any:
        with self._lock:
            code = self.script.pop(0) if self.script else self.default
            metadata = {k: v for k, v in context.invocation_metadata()}
            self.calls.append((time.monotonic(), code, metadata))
            if code == "OK" and not self.hang:
                self.accepted.append(request)
            self.received.notify_all()
        if self.hang:
            self._released.wait(30)
            context.abort(self._grpc.StatusCode.UNAVAILABLE, "released")
        if code != "OK":
            if self.retry_delay is not None:
                from google.rpc.error_details_pb2 import (  # type: ignore[import-untyped]
                    RetryInfo,
                )

                info = RetryInfo()
                info.retry_delay.FromNanoseconds(int(self.retry_delay * 1e9))
                context.set_trailing_metadata(
                    (("google.rpc.retryinfo-bin", info.SerializeToString()),)
                )
            context.abort(getattr(self._grpc.StatusCode, code), f"scripted {code.lower()}")
        return self.response

    def __enter__(self: _G) -> _G:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.stop(0)

    def release(self) -> None:
        self._released.set()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._lock:
            return self.received.wait_for(predicate, timeout)


_G = TypeVar("_G", bound=OtlpGrpcReceiver)


class OtlpGrpcMetricsReceiver(OtlpGrpcReceiver):
    """``opentelemetry.proto.collector.metrics.v1.MetricsService/Export``."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )

        super().__init__(
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
            ExportMetricsServiceRequest,
            ExportMetricsServiceResponse(),
        )


class OtlpGrpcLogsReceiver(OtlpGrpcReceiver):
    """``opentelemetry.proto.collector.logs.v1.LogsService/Export``."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
            ExportLogsServiceResponse,
        )

        super().__init__(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            ExportLogsServiceRequest,
            ExportLogsServiceResponse(),
        )

    def records(self) -> list[tuple[dict[str, Any], Any, Any]]:
        return [found for request in list(self.accepted) for found in log_records(request)]
