"""Real server processes on loopback ports, started and stopped around a test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from .._net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve(args: Sequence[str], port: int, env: dict[str, str] | None = None) -> Iterator[Path]:
    """Run ``python -m <args>`` from the repository root; yields the path of its output log."""
    log = ROOT / ".pytest-server-logs" / f"server-{port}.log"
    log.parent.mkdir(exist_ok=True)
    # The server's local store outside the repository's working tree.
    with tempfile.TemporaryDirectory(prefix="telemetry-store-") as store, open(log, "wb") as out:
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "TELEMETRY_LOGGING__SINKS__CONSOLE": "false",
            "TELEMETRY_STORE__PATH": os.path.join(store, "telemetry.db"),
            **(env or {}),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=full_env, stdout=out, stderr=out
        )
        try:
            wait_for_port(port, process, output=lambda: log.read_text(errors="replace"))
            yield log
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def port() -> int:
    return free_port()
