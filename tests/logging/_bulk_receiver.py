"""A loopback HTTP receiver standing in for Elasticsearch's ``_bulk`` API in the sink tests.

It decodes every request body as NDJSON with the standard ``json`` module and checks the bulk
format (an ``{"index": {"_index": ...}}`` action line before each document line, a final
newline, the ``application/x-ndjson`` content type). It can fail on purpose: ``stop()`` makes
the port refuse connections, and ``mode`` answers HTTP 500s, hangs, or per-item errors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Bulk:
    """One bulk request as received."""

    at: float
    headers: dict[str, str]
    pairs: list[tuple[str, dict[str, Any]]]  # (index, document)


@dataclass
class BulkReceiver:
    """The receiver; ``documents`` are the ones it stored (answered 201)."""

    # "ok": store everything; "500": answer HTTP 500; "hang": answer nothing for `hang` s;
    # "items": per-item errors for documents whose `n` matches `reject_if` (400, never
    # stored) or `retry_if` (429, stored when sent again after `retry_if` is cleared).
    mode: str = "ok"
    # The Retry-After header of "429" answers (seconds or an HTTP date), if any.
    retry_after: str | None = None
    hang: float = 2.0
    reject_if: Any = None
    retry_if: Any = None
    requests: list[Bulk] = field(default_factory=list)
    documents: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Elasticsearch
            disable_nagle_algorithm = True  # as Elasticsearch: no delayed-ACK stall per answer

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = receiver._answer(self.path, dict(self.headers.items()), body)
                if status == 0:
                    return  # hung up without answering
                payload = json.dumps(answer).encode()
                self.send_response(status)
                if status == 429 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Close the port and every open connection: the next attempt is refused."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- answering ----------------------------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        pairs = self._decode(path, headers, body)
        with self._lock:
            self.requests.append(Bulk(time.monotonic(), headers, pairs))
            mode = self.mode
        if mode == "hang":
            self._notify()  # wait_requests() sees the request that is now hanging
            time.sleep(self.hang)
            return 0, None
        if mode == "500":
            self._notify()
            return 500, {"error": "simulated outage", "status": 500}
        if mode == "429":
            self._notify()
            return 429, {"error": "too many requests", "status": 429}
        items, errors = [], False
        for index, document in pairs:
            n = document.get("n")
            if mode == "items" and self.reject_if is not None and self.reject_if(n):
                error = {"type": "mapper_parsing_exception", "reason": "failed to parse [n]"}
                items.append({"index": {"_index": index, "status": 400, "error": error}})
                errors = True
            elif mode == "items" and self.retry_if is not None and self.retry_if(n):
                error = {"type": "es_rejected_execution_exception", "reason": "queue full"}
                items.append({"index": {"_index": index, "status": 429, "error": error}})
                errors = True
            else:
                with self._lock:
                    self.documents.append((index, document))
                items.append({"index": {"_index": index, "status": 201}})
        self._notify()
        return 200, {"took": 1, "errors": errors, "items": items}

    def _decode(self, path: str, headers: dict[str, str], body: bytes) -> list[tuple[str, Any]]:
        if not path.split("?")[0].endswith("/_bulk"):
            self._problem(f"path {path!r} is not the _bulk API")
        if headers.get("Content-Type") != "application/x-ndjson":
            self._problem(f"content type {headers.get('Content-Type')!r}")
        text = body.decode("utf-8")
        if not text.endswith("\n"):
            self._problem("the body does not end with a newline")
        lines = text.split("\n")[:-1]
        if len(lines) % 2:
            self._problem(f"{len(lines)} lines: not action/document pairs")
        pairs = []
        for action_line, document_line in zip(lines[0::2], lines[1::2], strict=False):
            action = json.loads(action_line)
            document = json.loads(document_line)
            if list(action) != ["index"] or not isinstance(action["index"].get("_index"), str):
                self._problem(f"action line {action_line!r}")
            pairs.append((action["index"]["_index"], document))
        return pairs

    def _problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)

    def _notify(self) -> None:
        with self._lock:
            self.changed.notify_all()

    # --- waiting ----------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """Wait until ``count`` documents are stored; returns them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.documents) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            return list(self.documents)

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Bulk]:
        """Wait until ``count`` bulk requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            return list(self.requests)
