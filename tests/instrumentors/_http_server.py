"""A loopback HTTP server for the outbound HTTP instrumentors' tests: it answers every request
with the headers it received (names lower-cased) as JSON.

- ``/status/<code>`` answers with that status;
- ``/redirect`` answers 302 to ``/echo``;
- anything else answers 200.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EchoServer:
    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []  # the headers of every request, in order
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.received.append(headers)
                status = 200
                extra: dict[str, str] = {}
                if self.path.startswith("/status/"):
                    status = int(self.path.split("/")[2].split("?")[0])
                elif self.path.startswith("/redirect"):
                    status, extra = 302, {"location": "/echo"}
                body = json.dumps(headers).encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PURGE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/echo") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
