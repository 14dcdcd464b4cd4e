"""Nothing queued is lost when a real server stops: N requests, SIGTERM, N spans at a loopback
OTLP receiver (uvicorn's lifespan shutdown, gunicorn workers exiting)."""

from __future__ import annotations

import http.client

import pytest

from tests._net import free_port
from tests.servers.conftest import serve

from ._receivers import OtlpReceiver

pytestmark = pytest.mark.server

N = 60


def env_for(receiver: OtlpReceiver) -> dict[str, str]:
    # A long schedule delay: only the flush at shutdown can deliver these spans.
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "TELEMETRY_TRACING__SAMPLING": "always_on",
        "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "10m",
    }


def send(port: int, path: str, count: int) -> None:
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().status == 200
        connection.close()


def server_spans(receiver: OtlpReceiver) -> list[str]:
    return [span.name for _, span in receiver.spans() if span.kind == 2]  # SPAN_KIND_SERVER


@pytest.mark.parametrize(
    ("workers", "lifespan"),
    [(1, "auto"), (2, "auto"), (1, "off")],
    ids=["one", "two", "no-lifespan"],
)
def test_uvicorn_sigterm_delivers_every_span(workers: int, lifespan: str) -> None:
    """uvicorn (one process, --workers 2, and --lifespan off, where no shutdown event reaches
    the app) stopped with SIGTERM: all N server spans arrive."""
    port = free_port()
    with OtlpReceiver() as receiver:
        args = ["uvicorn", "sample_apps.starlette_app:app", "--port", str(port),
                "--workers", str(workers), "--lifespan", lifespan, "--no-access-log"]  # fmt: skip
        with serve(args, port, env=env_for(receiver)):
            send(port, "/api/users/1", N)
            assert receiver.count() == 0
        receiver.wait_for(lambda: False, timeout=0.2)
        names = server_spans(receiver)
        assert len(names) == N
        assert set(names) == {"GET /api/users/{user_id:int}"}


@pytest.mark.parametrize("worker_class", ["sync", "uvicorn.workers.UvicornWorker"])
def test_gunicorn_worker_exit_delivers_every_span(worker_class: str) -> None:
    """gunicorn -w 2 (sync Flask, and uvicorn workers) stopped with SIGTERM: N server spans."""
    port = free_port()
    app = "sample_apps.flask_app:app" if worker_class == "sync" else "sample_apps.starlette_app:app"
    path = "/api/users/1"
    with OtlpReceiver() as receiver:
        args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "2", "-k", worker_class,
                "--bind", f"127.0.0.1:{port}", app]  # fmt: skip
        with serve(args, port, env=env_for(receiver)):
            send(port, path, N)
        receiver.wait_for(lambda: False, timeout=0.2)
        assert len(server_spans(receiver)) == N
