"""Fixtures for the health check tests: real services on loopback, and Telemetry factories.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) are the machine's
own; a test that needs one fails under ``CI=true`` when it is missing, and is skipped elsewhere.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.health._state import ManualClock
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

from .._net import free_port

POSTGRES_URL = os.environ.get(
    "TELEMETRY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TELEMETRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing service must never pass silently in CI."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of the machine's PostgreSQL, after checking that it answers."""
    try:
        import sqlalchemy
    except ModuleNotFoundError as exc:
        require_service("PostgreSQL", f"sqlalchemy is not installed ({exc})")
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        require_service("PostgreSQL", f"{POSTGRES_URL}: {type(exc).__name__}: {exc}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of the machine's Redis, after checking that it answers PING."""
    try:
        import redis
    except ModuleNotFoundError as exc:
        require_service("Redis", f"redis is not installed ({exc})")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        require_service("Redis", f"{REDIS_URL}: {type(exc).__name__}: {exc}")
    return REDIS_URL


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    return free_port()


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port that accepts connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class HttpTarget:
    """A tiny threading HTTP server on 127.0.0.1: ``/ok`` 200, ``/fail`` 500, ``/hang`` never
    answers (until the test ends), ``/needs-token`` 200 only with ``X-Token: s3cret``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hanging = threading.Event()  # set once a /hang request is being held
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/hang":
                    target.hanging.set()
                    target.release.wait(30)
                    return
                if self.path == "/ok":
                    self._answer(200, b"fine")
                elif self.path == "/fail":
                    self._answer(500, b"database is on fire")
                elif self.path == "/needs-token":
                    ok = self.headers.get("X-Token") == "s3cret"
                    self._answer(200 if ok else 401, b"" if ok else b"who are you")
                else:
                    self._answer(404, b"no")

            do_HEAD = do_GET

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_target() -> Iterator[HttpTarget]:
    """A loopback HTTP server answering 200, 500, or hanging, per path."""
    server = HttpTarget()
    yield server
    server.close()


MakeCaptured = Callable[..., CapturedTelemetry]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
def make_captured(clock: ManualClock) -> Iterator[MakeCaptured]:
    """``make_captured(config)``: a capturing Telemetry on the manual clock, shut down after."""
    created: list[CapturedTelemetry] = []

    def factory(config: dict[str, Any] | None = None, **kwargs: Any) -> CapturedTelemetry:
        captured = capture_telemetry(config, service="shop", **kwargs)
        captured.telemetry.health.use_clock(clock)
        created.append(captured)
        return captured

    yield factory
    for captured in created:
        captured.close()


@pytest.fixture
def telemetry(make_captured: MakeCaptured) -> Telemetry:
    """A capturing Telemetry without checks, on the manual clock."""
    return make_captured().telemetry
