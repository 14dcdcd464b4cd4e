"""Several worker processes behind one port: /metrics shows the totals of all of them.

Real servers on loopback: uvicorn --workers and gunicorn (uvicorn worker class, with workers
recycled by --max-requests) serving the Starlette sample app.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def route_count(samples: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    return sum(
        value
        for labels, value in samples["http_requests_total"]
        if labels["route"] == "/api/users/{user_id:int}" and labels["status"] == "200"
    )


def test_uvicorn_workers_report_the_total_of_all_workers(port: int) -> None:
    """uvicorn --workers 4: every scrape, whichever worker answers, counts all requests."""
    args = ["uvicorn", "sample_apps.starlette_app:app", "--workers", "4", "--port", str(port),
            "--no-access-log"]  # fmt: skip
    with serve(args, port):
        send_spread(port, REQUESTS)
        for _ in range(4):  # several scrapes land on several workers
            samples = scrape(port)
            assert route_count(samples) == REQUESTS
            in_progress = [v for _l, v in samples["http_requests_in_progress"]]
            assert sum(in_progress) == 0.0
        pids = {labels["pid"] for labels, _ in samples["process_resident_memory_bytes"]}
        assert len(pids) == 4


def test_gunicorn_recycled_workers_keep_their_counts(port: int, tmp_path: Path) -> None:
    """gunicorn -w 4 with --max-requests: counts of recycled workers are kept, their files are
    folded away, and only live workers have process series."""
    args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "4",
            "-k", "uvicorn.workers.UvicornWorker", "--max-requests", "25",
            "--bind", f"127.0.0.1:{port}", "sample_apps.starlette_app:app"]  # fmt: skip
    with serve(args, port, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}):
        send_spread(port, REQUESTS)
        samples = scrape(port)
        assert route_count(samples) == REQUESTS
        pids = {labels["pid"] for labels, _ in samples["process_resident_memory_bytes"]}
        assert 1 <= len(pids) <= 4
        worker_files = [p.name for p in tmp_path.glob("*_[0-9]*.db")]
        # At most the four live workers' files (4 kinds each); recycled ones were folded.
        assert len({name.rsplit("_", 1)[1] for name in worker_files}) <= 4
        assert (tmp_path / "counter_archive.db").exists()
