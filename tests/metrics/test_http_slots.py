"""The HTTP metrics' per-request slots: folded into prometheus-client's children before every
collect, so totals, buckets, sums and exemplars are exactly what direct observation gives."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest

from telemetry_web.config import MetricsSettings
from telemetry_web.metrics._http import HttpMetrics
from telemetry_web.metrics._registry import MetricSet


def _metrics(**settings: object) -> tuple[CollectorRegistry, HttpMetrics]:
    registry = CollectorRegistry(auto_describe=True)
    http = HttpMetrics(MetricSet(registry, {"service": "s"}), MetricsSettings(**settings))  # type: ignore[arg-type]
    return registry, http


def test_totals_are_exact_and_match_direct_observation() -> None:
    registry, http = _metrics(size_histograms=True)
    reference = CollectorRegistry()
    direct = Histogram(
        "ref", "ref", ["status"], buckets=http._bounds[:-1], registry=reference
    ).labels("200")
    durations = [0.0, 0.001, 0.005, 0.0051, 0.25, 3.0, 100.0, 0.1]
    for d in durations:
        http.record("GET", "/a", 200, d, 10, 5_000, None)
        direct.observe(d)
    value = registry.get_sample_value
    labels = {"service": "s", "method": "GET", "route": "/a", "status": "200"}
    assert value("http_requests_total", labels) == len(durations)
    assert value("http_request_duration_seconds_count", labels) == len(durations)
    assert value("http_request_duration_seconds_sum", labels) == sum(durations)
    for bound in ("0.005", "0.1", "+Inf"):
        assert value("http_request_duration_seconds_bucket", {**labels, "le": bound}) == (
            reference.get_sample_value("ref_bucket", {"status": "200", "le": bound})
        )
    assert value("http_request_size_bytes_sum", labels) == 10 * len(durations)
    assert value("http_response_size_bytes_count", labels) == len(durations)
    # Folded once: a second collect adds nothing.
    assert value("http_requests_total", labels) == len(durations)
    http.record("GET", "/a", 200, 0.2, 0, 0, None)
    assert value("http_requests_total", labels) == len(durations) + 1


def test_threads_lose_nothing() -> None:
    registry, http = _metrics()
    per_thread, threads = 5_000, 8
    stop = threading.Event()

    def scrape() -> None:  # folds run while requests are recorded
        while not stop.is_set():
            registry.get_sample_value("http_requests_total", {})

    def work() -> None:
        for i in range(per_thread):
            http.record("GET", "/a", 200 if i % 3 else 500, i * 1e-4, 0, 0, None)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    scraper.join()
    total = sum(
        registry.get_sample_value(
            "http_requests_total", {"service": "s", "method": "GET", "route": "/a", "status": s}
        )
        or 0
        for s in ("200", "500")
    )
    assert total == per_thread * threads
    count = sum(
        registry.get_sample_value(
            "http_request_duration_seconds_count",
            {"service": "s", "method": "GET", "route": "/a", "status": s},
        )
        or 0
        for s in ("200", "500")
    )
    assert count == per_thread * threads


def test_latest_exemplar_per_bucket_is_exposed() -> None:
    registry, http = _metrics()
    http.record("GET", "/a", 200, 0.003, 0, 0, {"trace_id": "a" * 32, "span_id": "1" * 16})
    http.record("GET", "/a", 200, 0.004, 0, 0, {"trace_id": "b" * 32, "span_id": "2" * 16})
    http.record("GET", "/a", 200, 2.0, 0, 0, None)
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    bucket = next(line for line in text.splitlines() if 'le="0.005"' in line and "_bucket" in line)
    assert f'trace_id="{"b" * 32}"' in bucket
    assert "0.004" in bucket.split("#")[1]
    assert "trace_id" not in next(
        line for line in text.splitlines() if 'le="+Inf"' in line and "_bucket" in line
    )


def test_in_progress_value_counts_up_and_down() -> None:
    registry, http = _metrics()
    value = http.in_progress_value("GET", "/a", "http")
    assert value is http.in_progress_value("GET", "/a", "http")
    value.inc(1)
    value.inc(1)
    value.inc(-1)
    labels = {"service": "s", "method": "GET", "route": "/a"}
    assert registry.get_sample_value("http_requests_in_progress", labels) == 1


def test_requests_go_straight_to_the_table_and_count_in_progress_from_many_threads() -> None:
    """The lifecycle's path: ``started`` and ``record`` on the compiled table, ``record`` on
    ``HttpMetrics`` only for a new (method, route, status); the in-progress counts, updated
    without a lock, stay exact under threads."""
    registry, http = _metrics()
    table = http.request_table
    assert table is not None
    assert table.started("GET", "/a", "http") is None  # no gauge child yet
    assert not table.record("GET", "/a", 200, 0.01, 0, 0, None)  # no slot yet
    http.in_progress_value("GET", "/a", "http")
    http.record("GET", "/a", 200, 0.01, 0, 0, None)

    def requests() -> None:
        for _ in range(20_000):
            counted = table.started("GET", "/a", "http")
            assert counted is not None
            assert table.record("GET", "/a", 200, 0.01, 0, 0, None)
            counted.inc(-1)

    threads = [threading.Thread(target=requests) for _ in range(4)]
    for thread in threads:
        thread.start()
    counted = table.started("GET", "/a", "http")  # one still in progress
    for thread in threads:
        thread.join()
    labels = {"service": "s", "method": "GET", "route": "/a"}
    assert registry.get_sample_value("http_requests_in_progress", labels) == 1
    total = {**labels, "status": "200"}
    assert registry.get_sample_value("http_requests_total", total) == 80_001
    assert counted is not None
    counted.inc(-1)
    assert registry.get_sample_value("http_requests_in_progress", labels) == 0


def test_a_subclass_that_records_differently_is_called_for_every_request() -> None:
    class Filtered(HttpMetrics):
        def record(self, *args: object) -> None:
            pass

    registry = CollectorRegistry()
    filtered = Filtered(MetricSet(registry, {"service": "s"}), MetricsSettings())
    assert filtered.request_table is None
    assert _metrics()[1].request_table is not None
