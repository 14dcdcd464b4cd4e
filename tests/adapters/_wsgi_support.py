"""Helpers for the WSGI and Flask tests: raw WSGI calls, the raw test app, servers, metrics."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from telemetry_web.testing import CapturedTelemetry, capture_telemetry
from telemetry_web.wsgi import TelemetryWSGIMiddleware

from .._logs import json_lines
from .._net import wait_for_port
from .._waiting import poll

REPO = Path(__file__).resolve().parents[2]
SERVICE = "wsgi-test"
ENVIRONMENT = "test"
BASE_LABELS = {"service": SERVICE, "environment": ENVIRONMENT}
UNMATCHED = "<unmatched>"
STREAM_CHUNKS = (b"alpha-", b"bravo-", b"charlie-", b"delta")
STREAM_GAP = 0.05  # seconds slept before each chunk after the first
FILE_BODY = b"0123456789abcdef" * 4096  # 64 KiB: more than one sendfile/read block


def capture(**config: Any) -> CapturedTelemetry:
    """A Telemetry recording into memory, with this suite's service and environment and the
    opt-in body-size histograms (whose byte counts these tests check)."""
    sizes = {"metrics": {"size_histograms": True}}
    return capture_telemetry({"environment": ENVIRONMENT, **sizes, **config}, service=SERVICE)


# --- metrics -------------------------------------------------------------------------------------


def labels(method: str, route: str, status: int | str) -> dict[str, str]:
    """The full label set of a default-naming HTTP request series."""
    return {**BASE_LABELS, "method": method, "route": route, "status": str(status)}


def request_lines(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e.get("event") == "request" and e.get("logger") == "telemetry_web.request"
    ]


# --- calling WSGI apps directly ------------------------------------------------------------------


@dataclass
class WSGIResult:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    exc_info: Any = None
    returned: Any = None  # what the middleware returned (the iterable the server got)

    @property
    def code(self) -> int:
        return int(self.status[:3])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def make_environ(path: str = "/", *, method: str = "GET", **kwargs: Any) -> dict[str, Any]:
    """A complete WSGI environ from werkzeug's builder (``headers=``, ``data=``, …)."""
    builder = EnvironBuilder(path=path, method=method, **kwargs)
    try:
        return builder.get_environ()
    finally:
        builder.close()


def call_wsgi(
    app: Callable[..., Iterable[bytes]], environ: dict[str, Any], *, iterate: bool = True
) -> WSGIResult:
    """Serve one request as a PEP 3333 server does: start_response that honours ``exc_info``
    (re-raising only once headers went out), iterate, then always ``close()``."""
    state: dict[str, Any] = {"sent": False}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None:
            state["exc_info"] = exc_info
            if state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
        state["status"], state["headers"] = status, headers
        return write

    def write(data: bytes) -> None:
        state["sent"] = True
        chunks.append(data)

    returned = app(environ, start_response)
    try:
        if iterate:
            for chunk in returned:
                if chunk:
                    state["sent"] = True
                chunks.append(chunk)
    finally:
        close = getattr(returned, "close", None)
        if close is not None:
            close()
    return WSGIResult(
        state.get("status", ""), state.get("headers", []), b"".join(chunks),
        state.get("exc_info"), returned,
    )  # fmt: skip


# --- the raw WSGI app under test -----------------------------------------------------------------


class CountingBody:
    """A response iterable that counts ``close()`` calls and can fail at a given chunk."""

    def __init__(self, chunks: Iterable[bytes], *, fail_at: int | None = None, gap: float = 0):
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.gap = gap
        self.closed = 0
        self._index = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._index == self.fail_at:
            raise RuntimeError("mid-stream failure")
        if self._index >= len(self.chunks):
            raise StopIteration
        if self._index and self.gap:
            time.sleep(self.gap)
        chunk = self.chunks[self._index]
        self._index += 1
        return chunk

    def close(self) -> None:
        self.closed += 1


class RawApp:
    """A plain WSGI app (no framework) with one path per behaviour under test.

    ``bodies`` keeps every CountingBody it returned, so tests can check ``close()`` calls.
    """

    ROUTES = {"/users/": "/users/{id}", "/work/": "/work/{n}"}
    EXACT = frozenset({"/stream", "/boom", "/echo", "/file", "/send-file", "/fail-mid-stream",
                       "/fail-first-chunk", "/exc-info", "/late-exc-info"})  # fmt: skip

    def __init__(self, telemetry: Any = None) -> None:
        self.bodies: list[CountingBody] = []
        self.telemetry = telemetry
        self.calls = 0

    @classmethod
    def resolve(cls, environ: dict[str, Any]) -> str | None:
        """The route_resolver the tests install: a template per path prefix, or exact paths."""
        path = environ.get("PATH_INFO", "")
        for prefix, template in cls.ROUTES.items():
            if path.startswith(prefix):
                return template
        return path if path in cls.EXACT else None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        path = environ["PATH_INFO"]
        method = environ["REQUEST_METHOD"]
        text = [("Content-Type", "text/plain")]
        if path.startswith("/users/"):
            start_response("200 OK", text)
            return [b"user:", path[len("/users/") :].encode("latin-1")]
        if path.startswith("/work/"):
            return self._work(environ, start_response, path)
        if path == "/boom":
            raise RuntimeError("kaboom")
        if path == "/stream":
            start_response("200 OK", text)
            return self._body(STREAM_CHUNKS, gap=STREAM_GAP)
        if path == "/fail-mid-stream":
            start_response("200 OK", text)
            return self._body(STREAM_CHUNKS, fail_at=2)
        if path == "/fail-first-chunk":
            start_response("200 OK", text)
            return self._body(STREAM_CHUNKS, fail_at=0)
        if path == "/exc-info":
            try:
                raise ValueError("handled by the app")
            except ValueError:
                import sys

                start_response("500 Internal Server Error", text, sys.exc_info())
                return [b"sorry"]
        if path == "/late-exc-info":
            return self._late_exc_info(start_response)
        if path == "/echo":
            body = environ["wsgi.input"].read()
            start_response("200 OK", text)
            return [b"echo:" + body]
        if path == "/write":
            write = start_response("200 OK", text)
            write(b"written-")
            return [b"returned"]
        if path == "/teapot":
            start_response("418 I'm a teapot", [*text, ("X-Request-ID", "app-chosen")])
            return [b"short and stout"]
        if path == "/file":
            from werkzeug.wsgi import FileWrapper

            start_response("200 OK", [("Content-Length", str(len(FILE_BODY)))])
            wrapper = environ.get("wsgi.file_wrapper", FileWrapper)
            return wrapper(open(data_file(), "rb"), 8192)  # type: ignore[no-any-return]
        if path == "/send-file":
            from werkzeug.utils import send_file

            response = send_file(data_file(), environ, mimetype="application/octet-stream")
            return response(environ, start_response)
        start_response("404 Not Found", text)
        return [b"not found: " + method.encode()]

    def _body(self, chunks: Iterable[bytes], **kwargs: Any) -> CountingBody:
        body = CountingBody(chunks, **kwargs)
        self.bodies.append(body)
        return body

    def _late_exc_info(self, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        try:
            raise ValueError("too late for a new status")
        except ValueError:
            import sys

            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    def _work(self, environ: dict[str, Any], start_response: Any, path: str) -> Iterable[bytes]:
        """Sleeps a little and logs from inside the request (the concurrency tests)."""
        import logging

        n = path.rsplit("/", 1)[-1]
        time.sleep(0.002 * (int(n) % 7))
        if self.telemetry is not None:
            self.telemetry.get_logger("work").info("working", n=n)
        logging.getLogger("work.stdlib").warning("stdlib working %s", n)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"done:{n}".encode()]


DATA_FILE_PATH: Path | None = None


def data_file() -> Path:
    global DATA_FILE_PATH
    if DATA_FILE_PATH is None:
        fd, name = tempfile.mkstemp(prefix="telemetry-web-wsgi-", suffix=".bin")
        with os.fdopen(fd, "wb") as out:
            out.write(FILE_BODY)
        DATA_FILE_PATH = Path(name)
        atexit.register(DATA_FILE_PATH.unlink, missing_ok=True)
    return DATA_FILE_PATH


def served_app() -> TelemetryWSGIMiddleware:
    """The raw app behind the middleware, configured by the environment (JSON lines on stdout).

    For ``gunicorn 'tests.adapters._wsgi_support:served_app()'``.
    """
    from telemetry_web import Telemetry

    telemetry = Telemetry(  # with the opt-in body-size histograms, whose byte counts we check
        {"metrics": {"size_histograms": True}}, service="wsgi-served", environment=ENVIRONMENT
    )
    return TelemetryWSGIMiddleware(
        RawApp(telemetry), telemetry=telemetry, route_resolver=RawApp.resolve
    )


# --- real servers --------------------------------------------------------------------------------


@dataclass
class Server:
    """A server subprocess on a loopback port; ``stdout`` collects its JSON log lines."""

    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.stdout.read_text(encoding="utf-8", errors="replace"))

    def wait_for_lines(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The log lines once ``done(lines)`` holds (the writer thread is asynchronous)."""
        return poll(self.json_lines, done, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(argv: list[str], port: int, tmp_path: Path, **env: str) -> Server:
    """Start ``argv`` with cwd at the repo and src + repo on PYTHONPATH; wait for the port."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "OTEL_"))}
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    environ["PYTHONUNBUFFERED"] = "1"
    # The server's local store in the test's directory, not in the repository's working tree.
    environ["TELEMETRY_STORE__PATH"] = str(tmp_path / ".telemetry" / "telemetry.db")
    environ.update(env)
    stdout = tmp_path / f"server-{port}.out"
    stderr = tmp_path / f"server-{port}.err"
    with stdout.open("ab") as out, stderr.open("ab") as err:
        process = subprocess.Popen(argv, cwd=REPO, env=environ, stdout=out, stderr=err)
    server = Server(process, port, stdout, stderr)
    try:
        wait_for_port(port, process, output=stderr.read_text)
    except BaseException:  # pytest.fail's exception included: stop what did start
        server.stop()
        raise
    return server


def gunicorn_argv(spec: str, port: int, *, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
        "--threads", str(threads), "--bind", f"127.0.0.1:{port}", spec,
    ]  # fmt: skip


# --- Flask ---------------------------------------------------------------------------------------


class CapturedFlask(CapturedTelemetry):
    """A :class:`FlaskTelemetry` (``.extension``) recording into memory; ``.telemetry`` is its
    engine, built on first use as the extension builds it."""

    def __init__(self, extension: Any, spans: Any, logs: Any) -> None:
        self.extension = extension
        self._spans = spans
        self._logs = logs

    @property
    def telemetry(self) -> Any:  # type: ignore[override]
        return self.extension.telemetry


def capture_flask(app: Any = None, config: Any = None, **kwargs: Any) -> CapturedFlask:
    """The Flask extension recording into memory (``config=None`` defers to app.config)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from telemetry_web.flask import FlaskTelemetry
    from telemetry_web.testing import InMemoryLogSink

    spans, logs = InMemorySpanExporter(), InMemoryLogSink()
    kwargs.setdefault("use_env", False)
    extension = FlaskTelemetry(
        app, config=config, span_exporters=[spans], log_sinks=[logs], **kwargs
    )
    return CapturedFlask(extension, spans, logs)


FLASK_CONFIG: dict[str, Any] = {
    "service": SERVICE,
    "environment": ENVIRONMENT,
    "logging": {"sinks": {"console": False}},
    "metrics": {"size_histograms": True},  # opt-in: these tests check the byte counts
}
