"""Loopback ports for the suites that run real servers, peers and receivers.

``free_port()`` is a TCP port nothing listens on (bound, then closed): a server about to be
started takes it, a test of a refused connection dials it. ``wait_for_port`` waits for a server
subprocess to accept connections and fails the test, with the server's output, when it exits or
never listens; ``wait_for_http`` waits until a URL answers at all (any status).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    """A loopback UDP port nothing is bound to now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 30.0,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Return once ``process`` accepts connections on ``port``; fail the test with ``output()``
    (its log) if it exits first or does not listen within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited with {process.returncode}:\n{output()}")
        if accepts(port):
            return
        time.sleep(0.05)
    pytest.fail(f"nothing listened on port {port} within {timeout}s:\n{output()}")


def wait_for_http(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 30.0,
    output: Callable[[], str] = lambda: "",
    **request: Any,
) -> None:
    """Return once ``url`` answers a GET (any status; ``request`` goes to ``httpx.get``); fail
    the test with ``output()`` if ``process`` exits first or nothing answers in ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1, **request)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                pytest.fail(f"{process.args!r} exited with {process.returncode}:\n{output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer within {timeout}s:\n{output()}")
            time.sleep(0.1)
