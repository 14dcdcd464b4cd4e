"""Fault-injecting loopback peers: an HTTP server and a gRPC collector that misbehave on demand.

Every peer has a ``mode`` that can change while exporters talk to it:

======================  =======================================================================
``ok``                  answers at once and counts what it received as delivered
``slow``                answers after ``delay`` seconds (shorter than the exporter's timeout)
``hang``                accepts the connection and the request, and never answers
``refused``             nothing listens on the port (the listener is closed, reopened later)
``throttled``           HTTP 429 with ``Retry-After`` (gRPC: RESOURCE_EXHAUSTED with RetryInfo)
``unavailable``         HTTP 503 (gRPC: UNAVAILABLE)
``garbage``             a 200 whose body is random bytes (gRPC: an undecodable response message)
``content_type``        a 200 HTML page, as a captive proxy answers (gRPC: an HTTP/1.1 server)
``truncated``           an answer cut short: fewer body bytes than announced, then the
                        connection closed (gRPC: half an HTTP/2 frame)
======================  =======================================================================

Only answers given completely in the ``ok`` and ``slow`` modes count as ``delivered``; what
reached the peer in the malformed modes is counted apart (``received_malformed``): the exporter
cannot know whether such a batch was stored.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "refused", "hang", "slow", "throttled", "unavailable", "garbage", "content_type", "truncated",
)  # fmt: skip
MALFORMED = frozenset({"garbage", "content_type", "truncated"})
RETRY_AFTER = 2  # seconds, in the 429's Retry-After and the gRPC RetryInfo

# What a peer counts in a request body, and the body of its successful answer.
Decode = Callable[[bytes], int]
Answer = Callable[[bytes, int], tuple[bytes, str]]


def _empty_answer(body: bytes, count: int) -> tuple[bytes, str]:
    return b"", "application/x-protobuf"


class _Counts:
    """What a peer saw; every field is read and written under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.attempts = 0  # requests that reached the peer, in any mode
        self.attempt_times: list[float] = []
        self.delivered = 0  # items answered with success, completely
        self.received_malformed = 0  # items in requests answered in a malformed mode

    def attempt(self) -> None:
        with self.lock:
            self.attempts += 1
            self.attempt_times.append(time.monotonic())
            self.changed.notify_all()

    def add(self, *, delivered: int = 0, malformed: int = 0) -> None:
        with self.lock:
            self.delivered += delivered
            self.received_malformed += malformed
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.lock:
            return self.changed.wait_for(predicate, timeout)


class HttpPeer(_Counts):
    """A loopback HTTP/1.1 server on a fixed port, standing in for a collector or a cluster.

    Args:
        path: the URL path exporters post to (any path is accepted).
        decode: the number of items (spans, documents) in a request body.
        answer: the body and content type of a successful answer.
        ok_status: the status of a successful answer (Jaeger's collector says 202).
    """

    def __init__(
        self, path: str, decode: Decode, answer: Answer = _empty_answer, ok_status: int = 200
    ) -> None:
        super().__init__()
        self.path = path
        self.decode = decode
        self.answer = answer
        self.ok_status = ok_status
        self.mode = "ok"
        self.delay = 0.1
        self._closed = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        """Switch modes; ``refused`` closes the port and every open connection."""
        if mode == "refused":
            self._stop_listening()
        elif self._server is None:
            self._listen()
        self.mode = mode

    def close(self) -> None:
        self._closed.set()
        self._stop_listening()

    def _listen(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self.lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with peer.lock:
                    peer._connections.add(self.connection)

            def finish(self) -> None:
                with peer.lock:
                    peer._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                peer.attempt()
                peer._respond(self, body)

            def log_message(self, *args: Any) -> None:
                return None

        return Handler

    def _respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        mode = self.mode
        if mode == "hang":
            self._closed.wait(120)
            handler.close_connection = True
            return
        if mode == "slow":
            time.sleep(self.delay)
        if mode in ("ok", "slow"):
            count = self.decode(body)
            payload, content_type = self.answer(body, count)
            self.add(delivered=count)  # before the answer: the exporter's flush returns on it
            self._send(handler, self.ok_status, payload, content_type)
            return
        if mode in MALFORMED:
            self.add(malformed=self.decode(body))
        if mode == "throttled":
            self._send(handler, 429, b"slow down", "text/plain", {"Retry-After": str(RETRY_AFTER)})
        elif mode == "unavailable":
            self._send(handler, 503, b"upstream unavailable", "text/plain")
        elif mode == "garbage":
            self._send(handler, 200, os.urandom(64), "application/octet-stream")
        elif mode == "content_type":
            self._send(handler, 200, b"<html><body>Proxy login</body></html>", "text/html")
        elif mode == "truncated":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "4096")
            handler.end_headers()
            handler.wfile.write(b'{"errors": fal')
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


# --- gRPC ------------------------------------------------------------------------------------

_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_GARBAGE = b"\xff" * 16  # a varint longer than ten bytes: no protobuf message decodes it


class GrpcPeer(_Counts):
    """An OTLP/gRPC trace collector behind a TCP front that injects connection-level faults.

    The real ``grpcio`` server answers ``ok``, ``slow``, ``throttled``, ``unavailable`` and
    ``garbage``; the front (the port exporters dial) forwards bytes to it, or hangs, speaks
    HTTP/1.1, sends half a frame, or stops listening. A mode change closes every connection, so
    the exporter's next call dials again and meets the new mode.
    """

    def __init__(self) -> None:
        super().__init__()
        import grpc  # type: ignore[import-untyped]  # as in src: no stubs installed
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.mode = "ok"
        self.delay = 0.1
        self._grpc = grpc
        self._response: bytes = ExportTraceServiceResponse().SerializeToString()
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=ExportTraceServiceRequest.FromString,
            response_serializer=lambda answer: answer,
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_TRACE_SERVICE, {"Export": handler}),)
        )
        self._backend_port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "refused":
            self._stop_listening()
        elif self._listener is None:
            self._listen()
        self._drop_connections()

    def close(self) -> None:
        self._closed.set()
        self._stop_listening()
        self._drop_connections()
        self._server.stop(0)

    # --- the grpcio servicer ----------------------------------------------------------------

    def _export(self, request: Any, context: Any) -> bytes:
        grpc = self._grpc
        self.attempt()
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        mode = self.mode
        if mode == "slow":
            time.sleep(self.delay)
        if mode in ("ok", "slow"):
            self.add(delivered=count)
            return self._response
        if mode == "garbage":
            self.add(malformed=count)
            return _GARBAGE
        if mode == "throttled":
            from google.rpc.error_details_pb2 import (  # type: ignore[import-untyped]
                RetryInfo,
            )

            info = RetryInfo()
            info.retry_delay.seconds = RETRY_AFTER
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        context.abort(grpc.StatusCode.UNAVAILABLE, "upstream unavailable")
        raise AssertionError("unreachable")

    # --- the TCP front ------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _drop_connections(self) -> None:
        with self.lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self.lock:
            self._sockets.add(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        try:
            if mode == "hang":
                self._closed.wait(120)
            elif mode == "content_type":
                client.recv(65536)
                self.attempt()
                page = b"<html><body>Proxy login</body></html>"
                client.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                    + f"Content-Length: {len(page)}\r\n\r\n".encode()
                    + page
                )
            elif mode == "truncated":
                client.recv(65536)
                self.attempt()
                # A SETTINGS frame header announcing 18 bytes of payload, then 3 of them.
                client.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00")
            else:
                self._pump(client)
                return
        except OSError:
            pass
        try:
            client.close()
        except OSError:
            pass

    def _pump(self, client: socket.socket) -> None:
        backend = socket.create_connection(("127.0.0.1", self._backend_port))
        self._track(backend)

        def copy(source: socket.socket, target: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    target.sendall(data)
            except OSError:
                pass
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=copy, args=(backend, client), daemon=True).start()
        copy(client, backend)
