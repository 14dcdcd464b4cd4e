"""``/metrics``: Prometheus text or OpenMetrics by ``Accept``, gzip by ``Accept-Encoding``,
optionally behind a bearer token, on the app's port or on a port of its own."""

from __future__ import annotations

import gzip
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["MetricsEndpoint", "Response", "serve_metrics_in_thread"]

Response = tuple[int, list[tuple[str, str]], bytes]


class _Combined(Collector):
    """Several collectors as one, never the same family twice in one scrape."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Any]:
        seen: set[str] = set()
        for collector in self._collectors:
            for family in collector.collect():
                if family.name not in seen:
                    seen.add(family.name)
                    yield family


class MetricsEndpoint:
    """Renders the metrics for one scrape; framework-neutral (status, headers, body).

    By default: the Telemetry's own registry, then prometheus-client's default one (process and
    GC metrics, metrics defined the classic way). In multiprocess mode: the merged files.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        bearer_token: str | None = None,
        collectors: Iterable[Collector] | None = None,
    ) -> None:
        if collectors is None:
            collectors = [registry] if registry is not None else []
            if registry is not REGISTRY:
                collectors.append(REGISTRY)
        collectors = list(collectors)
        self._collector = _Combined(collectors)
        # One multiprocess collector: Prometheus text is rendered straight from its merged files.
        self._text: Callable[[], bytes] | None = (
            getattr(collectors[0], "render_text", None) if len(collectors) == 1 else None
        )
        self._token = f"Bearer {bearer_token}".encode() if bearer_token else None

    def render(
        self, accept: str | None, accept_encoding: str | None, authorization: str | None
    ) -> Response:
        if self._token is not None and not (
            authorization is not None and hmac.compare_digest(authorization.encode(), self._token)
        ):
            return (
                401,
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
                b"Unauthorized\n",
            )
        encoder, content_type = choose_encoder(accept or "")
        if self._text is not None and content_type == CONTENT_TYPE_PLAIN_0_0_4:
            body = self._text()
        else:
            body = encoder(self._collector)
        headers = [("Content-Type", content_type)]
        if accept_encoding and "gzip" in accept_encoding.lower():
            body = gzip.compress(body, compresslevel=5)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Vary", "Accept, Accept-Encoding"))
        return 200, headers, body


def serve_metrics_in_thread(
    endpoint: MetricsEndpoint, host: str, port: int, path: str
) -> ThreadingHTTPServer:
    """A small HTTP server for ``metrics.collectors.prometheus.port`` (a port of its own)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self.send_error(404)
                return
            status, headers, body = endpoint.render(
                self.headers.get("Accept"),
                self.headers.get("Accept-Encoding"),
                self.headers.get("Authorization"),
            )
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes are not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="telemetry-metrics", daemon=True)
    thread.start()
    return server
