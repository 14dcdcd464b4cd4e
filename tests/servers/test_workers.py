"""Several worker processes behind one port: /metrics shows the totals of all of them.

Real servers on loopback: uvicorn --workers and gunicorn's uvicorn workers serving the Starlette
sample app; gunicorn's sync and gthread workers, recycled by --max-requests, serving the Flask
sample app.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from .._metrics import Scrape
from .conftest import serve

pytestmark = pytest.mark.server

REQUESTS = 240


def send_spread(port: int, count: int) -> None:
    """`count` requests, each on a new connection so that the kernel spreads them over workers."""
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10) as client:
        for i in range(count):
            response = client.get(f"/api/users/{1 + i % 2}")
            assert response.status_code == 200


def scrape(port: int) -> Scrape:
    return Scrape.parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def route_count(samples: Scrape, route: str = "/api/users/{user_id:int}") -> float:
    return samples.sum_of("http_requests_total", route=route, status="200")


def test_uvicorn_workers_report_the_total_of_all_workers(port: int) -> None:
    """uvicorn --workers 4: every scrape, whichever worker answers, counts all requests."""
    args = ["uvicorn", "sample_apps.starlette_app:app", "--workers", "4", "--port", str(port),
            "--no-access-log"]  # fmt: skip
    with serve(args, port):
        send_spread(port, REQUESTS)
        for _ in range(4):  # several scrapes land on several workers
            samples = scrape(port)
            assert route_count(samples) == REQUESTS
            in_progress = [v for _l, v in samples.series("http_requests_in_progress")]
            assert sum(in_progress) == 0.0
        pids = {labels["pid"] for labels, _ in samples.series("process_resident_memory_bytes")}
        assert len(pids) == 4


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_gunicorn_four_workers_count_exactly_n_through_recycling(
    port: int, tmp_path: Path, worker_class: str
) -> None:
    """gunicorn -w 4 (sync and gthread) serving the Flask sample, workers recycled by
    --max-requests: /metrics counts exactly the N requests sent, recycled workers' files are
    folded away, and only live workers have process series."""
    args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "4", "-k", worker_class,
            "--threads", "4", "--max-requests", "25", "--bind", f"127.0.0.1:{port}",
            "sample_apps.flask_app:app"]  # fmt: skip
    with serve(args, port, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}):
        send_spread(port, REQUESTS)
        samples = scrape(port)
        assert route_count(samples, "/api/users/<int:user_id>") == REQUESTS
        assert sum(v for _l, v in samples.series("http_requests_in_progress")) == 0.0
        pids = {labels["pid"] for labels, _ in samples.series("process_resident_memory_bytes")}
        assert 1 <= len(pids) <= 4
        # Exited workers are folded once the master has reaped them (a zombie still "exists"),
        # which under load can lag the traffic: wait for it, boundedly.
        deadline = time.monotonic() + 20
        while True:
            pids_with_files = {p.name.rsplit("_", 1)[1] for p in tmp_path.glob("*_[0-9]*.db")}
            if len(pids_with_files) <= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            scrape(port)  # a scrape retires reaped workers too
        assert len(pids_with_files) <= 5  # four workers, and one maybe starting up
        assert (tmp_path / "counter_archive.db").exists()
        assert route_count(scrape(port), "/api/users/<int:user_id>") == REQUESTS


def test_gunicorn_uvicorn_workers_report_the_total(port: int) -> None:
    """gunicorn -w 4 -k uvicorn.workers.UvicornWorker (ASGI): the total of all workers."""
    args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "4",
            "-k", "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
            "sample_apps.starlette_app:app"]  # fmt: skip
    with serve(args, port):
        send_spread(port, REQUESTS)
        assert route_count(scrape(port)) == REQUESTS
