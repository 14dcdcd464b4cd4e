"""Multiprocess mode: several worker processes, one set of totals, dead workers retired.

Workers are real Python processes writing prometheus-client's memory-mapped files; the test
process reads the directory the way a scraping worker does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from telemetry_web.metrics._multiprocess import (
    MultiprocessCollector,
    retire_dead_workers,
    retire_worker,
)

from .._metrics import Scrape

WORKER = textwrap.dedent(
    """
    import os, sys
    from telemetry_web import Telemetry
    # No local store: it would be the working directory's (the repository's).
    t = Telemetry(service="mp", use_env=False,
                  config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}})
    for _ in range(int(sys.argv[1])):
        t.lifecycle.begin(method="GET", scheme="http", path="/x", query="", route="/x",
                          headers={}, client=None).finish(200)
    held = t.lifecycle.begin(method="GET", scheme="http", path="/slow", query="",
                             route="/slow", headers={}, client=None)  # still in progress
    print(os.getpid(), flush=True)
    if sys.argv[2] == "stay":
        sys.stdin.read()  # until the test closes our stdin
    """
)


def start_worker(directory: Path, requests: int, stay: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(requests), "stay" if stay else "exit"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def scrape(directory: Path) -> Scrape:
    registry = CollectorRegistry()
    registry.register(MultiprocessCollector(str(directory)))
    return Scrape.parse(generate_latest(registry).decode())


def test_totals_of_all_workers_and_dead_workers_retired(tmp_path: Path) -> None:
    """Counts add up over live and exited workers; an exited worker's in-progress request and
    process series disappear, its counts are folded into the archive, and its files are gone."""
    live = start_worker(tmp_path, 7, stay=True)
    live_pid = int(live.stdout.readline())  # type: ignore[union-attr]
    gone = start_worker(tmp_path, 5, stay=False)
    output, _ = gone.communicate(timeout=30)
    gone_pid = int(output)
    assert gone.returncode == 0
    try:
        samples = scrape(tmp_path)
        assert samples.sum_of("http_requests_total", route="/x", status="200") == 12.0
        assert samples.sum_of("http_request_duration_seconds_count", route="/x") == 12.0
        # Only the live worker's held request is still in progress.
        assert samples.sum_of("http_requests_in_progress", route="/slow") == 1.0
        pids = {labels["pid"] for labels, _ in samples.series("process_open_fds")}
        assert pids == {str(live_pid)}
        files = sorted(p.name for p in tmp_path.glob("*.db"))
        assert f"counter_{gone_pid}.db" not in files
        assert f"histogram_{gone_pid}.db" not in files
        assert "counter_archive.db" in files
        assert "histogram_archive.db" in files
        # Scraping again changes nothing: folded counts are not counted twice.
        again = scrape(tmp_path)
        assert again.sum_of("http_requests_total", route="/x", status="200") == 12.0
    finally:
        live.communicate(input="", timeout=30)


def test_retire_worker_is_what_gunicorns_master_calls(tmp_path: Path) -> None:
    """retire_worker(pid) folds a worker's files even when a process with that pid could exist,
    and a recycled worker's totals survive any number of recycles."""
    for _round in range(3):
        worker = start_worker(tmp_path, 4, stay=False)
        output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0
        retire_worker(int(output), str(tmp_path))
    samples = scrape(tmp_path)
    assert samples.sum_of("http_requests_total", route="/x", status="200") == 12.0
    assert samples.sum_of("http_requests_in_progress", route="/slow") == 0.0
    # Three recycled workers leave three archive files, not three sets of worker files.
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]


def test_gunicorn_settings_module_sets_the_directory_before_prometheus_client_loads(
    tmp_path: Path,
) -> None:
    """Importing telemetry_web.gunicorn (as gunicorn's master does) chooses and empties the
    directory without importing prometheus-client, so forked workers store values there."""
    (tmp_path / "counter_999.db").write_bytes(b"stale")
    code = textwrap.dedent(
        """
        import os, sys
        import telemetry_web.gunicorn as settings
        assert "prometheus_client" not in sys.modules, "imported too early"
        from prometheus_client import values
        print(settings.MULTIPROCESS_DIR, values.ValueClass._multiprocess)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path), "True"]
    assert list(tmp_path.glob("*.db")) == []


KINDS = textwrap.dedent(
    """
    import sys
    from prometheus_client import Counter, Gauge, Histogram
    n = int(sys.argv[1])
    c = Counter("jobs", "Jobs done.\\nSecond line \\\\ here.", ["queue"])
    c.labels('we"ird\\\\q\\n').inc(n)
    c.labels("plain").inc(0.25)
    h = Histogram("wait_seconds", "Wait.", ["queue"], buckets=(0.1, 1, 2.5e6))
    for v in (0.05, 0.5, 5, 3e6)[:n]:
        h.labels("plain").observe(v)
    for mode in ("liveall", "livesum", "max", "min", "mostrecent", "all"):
        Gauge(f"g_{mode}", f"Gauge {mode}.", multiprocess_mode=mode).set(n * 1.5)
    print("ok", flush=True)
    """
)


def test_text_matches_prometheus_clients_own_merge(tmp_path: Path) -> None:
    """render_text() and collect() give exactly what prometheus-client's MultiProcessCollector
    gives (values, types, help, escaped label values, every gauge mode), from live and retired
    workers' files; Prometheus text is parsed back to compare."""
    from prometheus_client import multiprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (1, 4):
        run = subprocess.run([sys.executable, "-c", KINDS, str(n)], env=env, timeout=60,
                             capture_output=True, text=True)  # fmt: skip
        assert run.stdout == "ok\n", run.stderr

    def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | str]:
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float | str] = {}
        for family in text_string_to_metric_families(text):
            found[family.name, ()] = f"{family.type}: {family.documentation}"
            for s in family.samples:
                if not s.name.startswith("g_") or "pid" not in s.labels:
                    found[s.name, tuple(sorted(s.labels.items()))] = s.value
        return found

    retire_dead_workers(str(tmp_path), take_lock=True)  # what our scrape does first
    reference = CollectorRegistry()
    multiprocess.MultiProcessCollector(reference, str(tmp_path))  # type: ignore[no-untyped-call]
    expected = parsed(generate_latest(reference).decode())
    ours = MultiprocessCollector(str(tmp_path))
    registry = CollectorRegistry()
    registry.register(ours)
    assert parsed(ours.render_text().decode()) == expected
    assert parsed(generate_latest(registry).decode()) == expected
    assert expected["jobs_total", (("queue", 'we"ird\\q\n'),)] == 5.0
    assert expected["wait_seconds_bucket", (("le", "2.5e+06"), ("queue", "plain"))] == 4.0
    assert expected["wait_seconds_count", (("queue", "plain"),)] == 5.0
    assert ("g_livesum", ()) not in expected  # both workers exited: live gauges are gone
    assert expected["g_max", ()] == 6.0
    assert expected["g_min", ()] == 1.5


def test_size_histograms_are_opt_in() -> None:
    """By default no body-size histograms; ``metrics.size_histograms: true`` records them."""
    from telemetry_web.testing import capture_telemetry

    def families(config: dict[str, object]) -> set[str]:
        captured = capture_telemetry(config)
        try:
            captured.telemetry.lifecycle.begin(
                method="POST", scheme="http", path="/x", query="", route="/x", headers={},
                client=None,
            ).finish(201, request_size=12, response_size=34)  # fmt: skip
            text = captured.metrics_text()
            names = {f.name for f in text_string_to_metric_families(text) if "size" in f.name}
            return {name for name in names if not name.endswith("_created")}
        finally:
            captured.close()

    assert families({}) == set()
    assert families({"metrics": {"size_histograms": True}}) == {
        "http_request_size_bytes",
        "http_response_size_bytes",
    }
