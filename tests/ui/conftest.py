"""A store filled by the sample app (under ``telemetry run -- uvicorn``: SQLAlchemy and Redis
child spans), ``telemetry ui`` as a real process, and headless Chromium driven by playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_tool

from .._net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "telemetry"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
# The trace ids the tests send in `traceparent`, so they know what to look for.
FAIL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REPORT_TRACE = "0af7651916cd43dd8448eb211c80319c"


def traceparent(trace_id: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class SampleApp:
    base: str
    store: Path
    env: dict[str, str]

    def get(self, path: str, trace_id: str | None = None) -> httpx.Response:
        headers = traceparent(trace_id) if trace_id else {}
        return httpx.get(self.base + path, headers=headers, timeout=10)

    def wait_for_trace(self, trace_id: str, spans: int = 1) -> None:
        """Until the trace has ``spans`` spans and a log line in the store."""
        import sqlite3

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.store.exists():
                conn = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True)
                try:
                    found = conn.execute(
                        "SELECT (SELECT COUNT(*) FROM spans WHERE trace_id = ?), "
                        "(SELECT COUNT(*) FROM logs WHERE trace_id = ?)",
                        (trace_id, trace_id),
                    ).fetchone()
                except sqlite3.Error:
                    found = (0, 0)
                finally:
                    conn.close()
                if found[0] >= spans and found[1] >= 1:
                    return
            time.sleep(0.2)
        raise AssertionError(f"trace {trace_id} did not reach the store")


@pytest.fixture(scope="module")
def sample_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleApp]:
    """The Starlette sample under `telemetry run -- uvicorn`, writing spans, log lines and its
    metric history to a fresh store; the module's traffic has been sent and stored."""
    tmp = tmp_path_factory.mktemp("ui-store")
    store = tmp / "telemetry.db"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "TELEMETRY_LOGGING__SINKS__CONSOLE": "false",
        "TELEMETRY_STORE__PATH": str(store),
        "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "0.1s",
        "TELEMETRY_METRICS__COLLECTORS__PROMETHEUS__SCRAPE_INTERVAL": "1s",
    }
    log = tmp / "app.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [str(SCRIPT), "run", "--", sys.executable, "-m", "uvicorn",
             "sample_apps.starlette_app:app", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    app = SampleApp(f"http://127.0.0.1:{port}", store, env)
    try:
        wait_for_http(app.base + "/health", proc, output=log.read_text)
        for path in ("/api/users", "/api/users/1", "/api/users/9", "/api/slow", "/api/stream"):
            app.get(path)
        assert app.get("/api/report", REPORT_TRACE).status_code == 200
        assert app.get("/api/fail", FAIL_TRACE).status_code == 500
        app.wait_for_trace(REPORT_TRACE, spans=3)
        app.wait_for_trace(FAIL_TRACE)
        yield app
    finally:
        stop(proc)


@dataclass
class UIServer:
    url: str
    proc: subprocess.Popen[bytes]
    output: str


@pytest.fixture
def start_ui(tmp_path: Path) -> Iterator[Callable[..., UIServer]]:
    """Starts `telemetry ui` on a free port: ``start_ui(store, "--host", ..., token=...)``."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        store: Path, *args: str, host: str = "127.0.0.1", token: str | None = None
    ) -> UIServer:
        port = free_port()
        log = tmp_path / f"ui-{port}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        env.pop("TELEMETRY_UI_TOKEN", None)
        if token is not None:
            env["TELEMETRY_UI_TOKEN"] = token
        with log.open("wb") as output:
            proc = subprocess.Popen(
                [str(SCRIPT), "ui", "--store", str(store), "--host", host, "--port", str(port),
                 *args],
                env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}/"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        wait_for_http(url, proc, output=log.read_text, headers=headers)
        return UIServer(url, proc, log.read_text())

    yield start
    for proc in started:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by playwright (never `playwright install`)."""
    chromium = require_tool("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 820})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
