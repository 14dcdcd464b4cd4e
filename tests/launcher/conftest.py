"""Unchanged apps run under the launcher as real processes on loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from .._metrics import Scrape
from .._net import free_port, wait_for_port
from .._waiting import poll

VENV_BIN = Path(sys.executable).parent
#: The installed `telemetry run --`, as a user types it.
LAUNCHER = [str(VENV_BIN / "telemetry"), "run", "--"]


def write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


class Server:
    """A launched process and the file holding its stdout and stderr."""

    def __init__(self, process: subprocess.Popen[bytes], output: Path, port: int) -> None:
        self.process = process
        self.output = output
        self.port = port

    def get(self, path: str) -> httpx.Response:
        limits = httpx.Limits(max_keepalive_connections=0)  # new connection: any worker
        with httpx.Client(limits=limits, timeout=10) as client:
            return client.get(f"http://127.0.0.1:{self.port}{path}")

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def request_lines(self, timeout: float = 10.0, count: int = 1) -> list[dict[str, object]]:
        """The JSON request log lines written so far (waiting for ``count`` of them)."""

        def read() -> list[dict[str, object]]:
            return [json.loads(line) for line in self.text().splitlines()
                    if line.startswith("{") and '"event": "request"' in line]  # fmt: skip

        return poll(read, lambda lines: len(lines) >= count, timeout, interval=0.1)

    def metrics_text(self) -> str:
        """One /metrics scrape (failing with the server's output when it is not answered)."""
        response = self.get("/metrics")
        assert response.status_code == 200, f"/metrics {response.status_code}:\n{self.text()}"
        return response.text

    def requests_total(self, route: str, status: str = "200") -> float:
        scrape = Scrape.parse(self.metrics_text())
        return scrape.sum_of("http_requests_total", route=route, status=status)


@contextlib.contextmanager
def launch(
    command: Sequence[str], cwd: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``command`` in ``cwd`` (its own process group), wait for ``port``, stop it after."""
    output = cwd / f"server-{port}.log"
    full_env = {
        **os.environ,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "PYTHONPATH": str(cwd),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "TELEMETRY_DISABLED_INSTRUMENTATIONS"):
        if env is None or name not in env:
            full_env.pop(name, None)
    with open(output, "wb") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = Server(process, output, port)
    try:
        wait_for_port(port, process, output=server.text)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group we started (workers included), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


#: A minimal unchanged Django project (``mysite``): one URL pattern, no database.
DJANGO_PROJECT = {
    "manage.py": """
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
    """,
    "mysite/__init__.py": "",
    "mysite/asgi.py": """
        import os

        from django.core.asgi import get_asgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        application = get_asgi_application()
    """,
    "mysite/settings.py": """
        SECRET_KEY = "test"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1"]
        ROOT_URLCONF = "mysite.urls"
        INSTALLED_APPS = ["django.contrib.contenttypes"]
        MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
        DATABASES = {}
        USE_TZ = True
    """,
    "mysite/urls.py": """
        from django.http import HttpResponse
        from django.urls import path


        def user(request, user_id):
            return HttpResponse(f"user {user_id}")


        urlpatterns = [path("users/<int:user_id>", user)]
    """,
}


@pytest.fixture
def port() -> int:
    return free_port()
