"""StatsD: the line format, packets, the real Etsy StatsD daemon, several workers and faults.

The daemon is the npm package ``statsd`` (installed in ``.npm-statsd/`` by
scripts/ensure-services.sh), started with node on a free UDP port with a fast flush; a small
backend module written by the fixture (StatsD's documented backend interface) appends every
flush, as the daemon aggregated it, to a JSON-lines file that the tests read back. DogStatsD
lines are also parsed by an independent parser from a loopback UDP receiver.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from telemetry_web import Telemetry
from telemetry_web.errors import ConfigError
from telemetry_web.metrics.outputs import Snapshot
from telemetry_web.metrics.outputs._statsd import format_lines, pack, split_host

from .._net import free_port, free_udp_port
from .._requests import send_requests
from .._timing import assert_not_slowed
from .._waiting import wait_until
from ..conftest import require_tool
from ..servers.conftest import ROOT, serve

STATSD_JS = ROOT / ".npm-statsd" / "node_modules" / "statsd" / "stats.js"
REQUESTS = "app.http_requests_total.method.GET.route._unmatched_.status.200"

# --- the line format -------------------------------------------------------------------------


def snapshot_of(registry: CollectorRegistry) -> Snapshot:
    return Snapshot(tuple(registry.collect()), 0, 0)


def test_counter_histogram_and_gauge_lines() -> None:
    """Counters as deltas, histogram _bucket/_count/_sum as counters, gauges absolute, labels
    folded with the sanitiser, constant labels left out, the prefix applied."""
    registry = CollectorRegistry()
    hits = Counter("hits", "H.", ["service", "route", "ratio"], registry=registry)
    hits.labels("svc", "/users/{id}", "0.5").inc(3)
    Histogram("lat_seconds", "L.", ["service"], buckets=[0.25], registry=registry).labels(
        "svc"
    ).observe(0.1)
    Gauge("temp", "T.", ["zone"], registry=registry).labels("").set(21.5)
    units = list(format_lines(snapshot_of(registry), {}, prefix="app",
                              constant_labels={"service": "svc"}))  # fmt: skip
    assert [lines for lines, _k, _v in units] == [
        ["app.hits_total.route._users_id_.ratio.0_5:3|c"],
        ["app.lat_seconds_bucket.le.0_25:1|c"],
        ["app.lat_seconds_bucket.le._Inf:1|c"],
        ["app.lat_seconds_count:1|c"],
        ["app.lat_seconds_sum:0.1|c"],
        ["app.temp.zone._:21.5|g"],
    ]


def test_deltas_only_when_changed_and_resets_sent_whole() -> None:
    """A counter already sent at its value is not sent again; a lower value (a reset) is sent
    whole; a histogram sum may go down."""
    registry = CollectorRegistry()
    Counter("a", "A.", registry=registry).inc(5)
    Counter("b", "B.", registry=registry).inc(2)
    Histogram("h", "H.", buckets=[1.0], registry=registry).observe(-0.5)
    sent = {("a_total", ()): 5.0, ("b_total", ()): 7.0, ("h_sum", ()): 1.0,
            ("h_count", ()): 1.0, ("h_bucket", (("le", "1.0"),)): 1.0,
            ("h_bucket", (("le", "+Inf"),)): 1.0}  # fmt: skip
    lines = [line for lines, _k, _v in format_lines(snapshot_of(registry), sent) for line in lines]
    assert lines == ["b_total:2|c", "h_sum:-1.5|c"]


def test_negative_gauges_are_reset_to_zero_first_and_nan_is_not_sent() -> None:
    """A negative gauge is ``0`` then the value (StatsD reads ``-3`` as a decrement), as one
    unit; NaN and infinite values are left out."""
    registry = CollectorRegistry()
    Gauge("g", "G.", registry=registry).set(-3)
    Gauge("n", "N.", registry=registry).set(math.nan)
    Gauge("i", "I.", registry=registry).set(math.inf)
    units = [lines for lines, _k, _v in format_lines(snapshot_of(registry), {})]
    assert units == [["g:0|g", "g:-3|g"]]


def test_dogstatsd_tags() -> None:
    """``dogstatsd``: every label (constant ones too) a tag, ``|``, ``,``, ``#`` and whitespace
    in values replaced; names keep their characters."""
    registry = CollectorRegistry()
    Counter("hits", "H.", ["service", "route", "odd"], registry=registry).labels(
        "svc", "/users/{id}", "a|b,c#d e"
    ).inc()
    Gauge("plain", "P.", registry=registry).set(-1)
    units = [lines for lines, _k, _v in format_lines(snapshot_of(registry), {}, prefix="p.",
                                                     dogstatsd=True)]  # fmt: skip
    assert units == [
        ["p.hits_total:1|c|#service:svc,route:/users/{id},odd:a_b_c_d_e"],
        ["p.plain:0|g", "p.plain:-1|g"],
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [("statsd:9125", ("statsd", 9125)), ("statsd", ("statsd", 8125)),
     ("[::1]:9000", ("::1", 9000)), ("::1", ("::1", 8125)), ("[::1]", ("::1", 8125))],
)  # fmt: skip
def test_split_host(host: str, expected: tuple[str, int]) -> None:
    """``host:port`` forms, IPv6 in brackets, the default port 8125."""
    assert split_host(host) == expected


@pytest.mark.parametrize("max_size", [64, 100, 1432])
def test_packets_never_split_a_line_and_keep_the_order(max_size: int) -> None:
    """Every packet is at most ``max_size`` bytes, lines are whole and in order, a two-line
    unit stays in one packet, a unit bigger than a packet is skipped and reported."""
    units = [[f"m{i}.{'x' * (i * 7 % 40)}:{i}|c"] for i in range(200)]
    units[50] = ["neg:0|g", "neg:-4|g"]
    units[120] = ["huge." + "y" * 2000 + ":1|c"]
    packets = list(pack(units, max_size))
    assert all(len(p) <= max_size for p, _n in packets)
    assert sum(n for _p, n in packets) == len(units)
    assert (b"", 1) in packets
    lines = [line for p, _n in packets if p for line in p.decode().split("\n")]
    expected = [line for i, unit in enumerate(units) if i != 120 for line in unit]
    assert lines == expected
    (holder,) = [p for p, _n in packets if b"neg:0|g" in p]
    assert b"neg:0|g\nneg:-4|g" in holder


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("flush_interval", "fast", "metrics.collectors.statsd.flush_interval"),
     ("flush_interval", "0s", "metrics.collectors.statsd.flush_interval"),
     ("host", "stats d:8125", "metrics.collectors.statsd.host"),
     ("host", "statsd:99999", "metrics.collectors.statsd.host"),
     ("prefix", "app/web", "metrics.collectors.statsd.prefix"),
     ("max_packet_size", 10, "metrics.collectors.statsd.max_packet_size"),
     ("dogstatsd", "maybe", "metrics.collectors.statsd.dogstatsd")],
)  # fmt: skip
def test_invalid_configuration_names_the_key(key: str, value: Any, message: str) -> None:
    """A bad value is a ConfigError naming the key path."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        telemetry_for("127.0.0.1:8125", **{key: value})


# --- helpers ---------------------------------------------------------------------------------


def telemetry_for(host: str, /, **statsd: Any) -> Telemetry:
    section = {"host": host, "prefix": "app", "flush_interval": "0.2s", **statsd}
    config = {"service": "sd", "environment": "test", "tracing": {"enabled": False},
              "logging": {"sinks": {"console": False}}, "store": {"enabled": False},
              "metrics": {"collectors": {"statsd": section}}}  # fmt: skip
    return Telemetry(config=config, use_env=False, set_global=False,
                     capture_stdlib_logging=False)  # fmt: skip


def dropped(telemetry: Telemetry, reason: str) -> float:
    value = telemetry.registry.get_sample_value(
        "telemetry_metrics_dropped_total", {"exporter": "statsd", "reason": reason,
                                            "service": "sd", "environment": "test"}
    )  # fmt: skip
    return value or 0.0


class Receiver:
    """A loopback UDP receiver keeping every datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.packets.append(self.sock.recv(65535))
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for p in list(self.packets) for line in p.decode().split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver()
    yield peer
    peer.close()


_DOGSTATSD = re.compile(r"^(?P<name>[^:|#]+):(?P<value>[^|]+)\|(?P<type>c|g|ms|h|s|d)"
                        r"(?:\|@(?P<rate>[0-9.]+))?(?:\|#(?P<tags>[^|]*))?$")  # fmt: skip


def parse_dogstatsd(line: str) -> tuple[str, float, str, dict[str, str]]:
    """One DogStatsD datagram line (the documented grammar) as (name, value, type, tags)."""
    match = _DOGSTATSD.match(line)
    assert match is not None, line
    tags = dict(t.split(":", 1) for t in match["tags"].split(",")) if match["tags"] else {}
    assert match["rate"] is None  # exact counts: never sampled
    return match["name"], float(match["value"]), match["type"], tags


# --- the real StatsD daemon ------------------------------------------------------------------

_BACKEND = """
const fs = require('fs');
exports.init = function (startupTime, config, events) {
  events.on('flush', function (timestamp, metrics) {
    fs.appendFileSync(config.jsonl.path, JSON.stringify(
      {counters: metrics.counters, gauges: metrics.gauges}) + "\\n");
  });
  return true;
};
"""


class StatsdDaemon:
    def __init__(self, port: int, flushes: Path) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self._flushes = flushes

    def flushes(self) -> list[dict[str, Any]]:
        if not self._flushes.exists():
            return []
        text = self._flushes.read_text()
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def counter(self, key: str) -> float:
        """The total the daemon counted for ``key`` over every flush."""
        return sum(f["counters"].get(key, 0) or 0 for f in self.flushes())

    def gauge(self, key: str) -> float | None:
        """The gauge's value at the last flush that had it."""
        values = [f["gauges"][key] for f in self.flushes() if key in f["gauges"]]
        return values[-1] if values else None

    def keys(self, kind: str) -> set[str]:
        return {k for f in self.flushes() for k in f[kind]}

    def wait_counter(self, key: str, expected: float, timeout: float = 15.0) -> None:
        seen = lambda: (key, self.counter(key), sorted(self.keys("counters"))[:40])  # noqa: E731
        wait_until(lambda: self.counter(key) >= expected, timeout, what=seen)
        time.sleep(0.5)  # nothing more arrives: not more than expected
        assert self.counter(key) == expected


@pytest.fixture
def statsd(tmp_path: Path) -> Iterator[StatsdDaemon]:
    node = require_tool("node")
    if not STATSD_JS.exists():
        message = f"the statsd daemon is not installed in {STATSD_JS.parents[2]} (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    backend = tmp_path / "jsonl_backend.js"
    backend.write_text(_BACKEND)
    flushes = tmp_path / "flushes.jsonl"
    port, mgmt_port = free_udp_port(), free_port()
    config = tmp_path / "statsd-config.js"
    config.write_text(json.dumps({
        "address": "127.0.0.1", "port": port, "mgmt_address": "127.0.0.1",
        "mgmt_port": mgmt_port, "flushInterval": 200, "deleteIdleStats": True,
        "backends": [str(backend)], "jsonl": {"path": str(flushes)},
    }))  # fmt: skip
    log = open(tmp_path / "statsd.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen([node, str(STATSD_JS), str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not _management_answers(mgmt_port):
            assert process.poll() is None, (tmp_path / "statsd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "statsd did not start"
            time.sleep(0.1)
        yield StatsdDaemon(port, flushes)
        assert process.poll() is None, (tmp_path / "statsd.log").read_text()[-2000:]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _management_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"health\n")
            return conn.recv(100).startswith(b"health: up")
    except OSError:
        return False


@pytest.mark.server
def test_one_process_totals_are_exact_at_the_daemon(statsd: StatsdDaemon) -> None:
    """N requests through the middleware: the daemon counts exactly N requests, N histogram
    observations (count and +Inf bucket), the in-progress gauge at 0, no bad line; the last
    requests arrive with the final flush at shutdown."""
    telemetry = telemetry_for(statsd.host)
    try:
        send_requests(telemetry, 37)
        statsd.wait_counter(REQUESTS, 37)
        send_requests(telemetry, 5)
        statsd.wait_counter(REQUESTS, 42)
        duration = "app.http_request_duration_seconds"
        suffix = ".method.GET.route._unmatched_.status.200"
        assert statsd.counter(f"{duration}_count{suffix}") == 42
        assert statsd.counter(f"{duration}_bucket{suffix}.le._Inf") == 42
        assert 0 < statsd.counter(f"{duration}_sum{suffix}") < 42
        assert statsd.gauge("app.http_requests_in_progress.method.GET.route._unmatched_") == 0
        telemetry.configure_metrics(telemetry.settings.metrics)  # rebuilt: nothing sent twice
        send_requests(telemetry, 8)
    finally:
        telemetry.shutdown(3.0)
    statsd.wait_counter(REQUESTS, 50)
    assert statsd.counter("statsd.bad_lines_seen") == 0
    assert dropped(telemetry, "export_failed") == dropped(telemetry, "rejected") == 0


@pytest.mark.server
def test_gauges_including_negative_values_at_the_daemon(statsd: StatsdDaemon) -> None:
    """A gauge goes 5 → -3 → -7 → 2 at the daemon exactly (the zero reset before a negative
    value), and an application counter with labels arrives under its folded name."""
    telemetry = telemetry_for(statsd.host, flush_interval="60s")
    level = telemetry.create_gauge("level").with_label_keys("tank").register()
    jobs = telemetry.create_counter("jobs_processed_total").with_label_keys("queue").register()
    key = "app.level.tank.a_b"
    try:
        for value in (5, -3, -7, 2):
            level.labels("a.b").set(value)
            jobs.labels("emails/eu").inc()
            telemetry.flush(2.0)
            gauge_is = lambda v=value: statsd.gauge(key) == v  # noqa: E731
            wait_until(gauge_is, 15.0, what=lambda: statsd.gauge(key))
    finally:
        telemetry.shutdown(2.0)
    statsd.wait_counter("app.jobs_processed_total.queue.emails_eu", 4)
    assert statsd.counter("statsd.bad_lines_seen") == 0


@pytest.mark.server
def test_dogstatsd_tags_at_the_daemon_and_an_independent_parser(
    statsd: StatsdDaemon, receiver: Receiver
) -> None:
    """``dogstatsd: true``: the daemon (which files tags as ``name;k=v``) counts exactly, and
    every line a loopback receiver gets parses with the DogStatsD grammar, tags included."""
    for host in (statsd.host, f"127.0.0.1:{receiver.port}"):
        telemetry = telemetry_for(host, dogstatsd=True)
        try:
            send_requests(telemetry, 11, "/orders")
        finally:
            telemetry.shutdown(3.0)
    tagged = ("app.http_requests_total;service=sd;environment=test;method=GET;"
              "route=unmatched;status=200")  # fmt: skip
    statsd.wait_counter(tagged, 11)
    assert statsd.counter("statsd.bad_lines_seen") == 0
    parsed = [parse_dogstatsd(line) for line in receiver.lines()]
    requests = [(v, t, tags) for name, v, t, tags in parsed if name == "app.http_requests_total"]
    tags = {"service": "sd", "environment": "test", "method": "GET", "route": "<unmatched>",
            "status": "200"}  # fmt: skip
    assert requests == [(11.0, "c", tags)]
    buckets = {tags["le"]: v for name, v, _t, tags in parsed
               if name == "app.http_request_duration_seconds_bucket"}  # fmt: skip
    assert buckets["+Inf"] == 11
    assert all(v <= 11 for v in buckets.values())


@pytest.mark.server
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_two_workers_each_send_their_deltas_and_totals_are_exact(
    statsd: StatsdDaemon, tmp_path: Path, server: str
) -> None:
    """Two worker processes, each sending its own deltas: the daemon's totals are the
    requests served, exactly, also for the last ones sent at SIGTERM; every worker sent."""
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        f"metrics:\n  collectors:\n    statsd:\n      host: {statsd.host}\n"
        f"      prefix: svc\n      flush_interval: 1s\n"
    )
    port = free_port()
    if server == "uvicorn":
        args = ["uvicorn", "sample_apps.starlette_app:app", "--workers", "2",
                "--port", str(port), "--no-access-log"]  # fmt: skip
    else:
        args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "2",
                "-k", "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
                "sample_apps.starlette_app:app"]  # fmt: skip
    key = "svc.http_requests_total.method.GET.route._api_users_user_id_int_.status.200"
    with serve(
        args, port, env={"TELEMETRY_CONFIG": str(config), "TELEMETRY_STORE__ENABLED": "false"}
    ):
        limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            for i in range(60):
                assert client.get(f"/api/users/{1 + i % 2}").status_code == 200
            statsd.wait_counter(key, 60)
            pids = {k.split(".pid.")[1] for k in statsd.keys("gauges")
                    if k.startswith("svc.process_resident_memory_bytes.pid.")}  # fmt: skip
            assert len(pids) >= 2  # both workers' process gauges: the merged view
            for i in range(10):
                assert client.get(f"/api/users/{1 + i % 2}").status_code == 200
    statsd.wait_counter(key, 70)  # sent by the SIGTERM flush at the latest
    assert statsd.counter("statsd.bad_lines_seen") == 0


# --- packets, faults -------------------------------------------------------------------------


def test_packets_respect_max_packet_size(receiver: Receiver) -> None:
    """300 series with long labels at ``max_packet_size: 256``: every datagram is at most 256
    bytes, holds several whole lines, and the values sum exactly."""
    telemetry = telemetry_for(f"127.0.0.1:{receiver.port}", max_packet_size=256,
                              flush_interval="60s")  # fmt: skip
    jobs = telemetry.create_counter("jobs_total").with_label_keys("queue").register()
    try:
        for i in range(300):
            jobs.labels(f"queue-{i:03d}-{'q' * 40}").inc(i + 1)
        telemetry.flush(2.0)
        wait_until(lambda: sum(1 for line in receiver.lines() if "jobs_total" in line) >= 300, 15.0)
    finally:
        telemetry.shutdown(1.0)
    assert max(len(p) for p in receiver.packets) <= 256
    assert min(p.count(b"\n") for p in receiver.packets[:-1]) >= 1
    values = [int(line.split(":")[1].split("|")[0]) for line in receiver.lines()
              if line.startswith("app.jobs_total.")]  # fmt: skip
    assert sorted(values) == list(range(1, 301))


def test_unresolvable_host_never_slows_requests(caplog: pytest.LogCaptureFixture) -> None:
    """A host that does not resolve: requests keep their speed, one line per period names the
    cause and the destination, the snapshots are counted as dropped."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    telemetry = telemetry_for("statsd.invalid:8125", flush_interval="0.05s")
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            durations.extend(send_requests(telemetry, 20))
        assert_not_slowed(durations)
        wait_until(lambda: dropped(telemetry, "export_failed") > 0, 15.0)
        lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
        assert lines == [lines[0]]
        assert lines[0].startswith("Metric export failed: cannot resolve 'statsd.invalid'")
        assert "to udp://statsd.invalid:8125" in lines[0]
    finally:
        telemetry.shutdown(0.5)


def test_refused_port_is_reported_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on the UDP port: the refusal (reported by the send after the refused
    packet) gives one line, drops are counted, requests are not slowed."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    port = free_udp_port()
    telemetry = telemetry_for(f"127.0.0.1:{port}", flush_interval="0.05s")
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            durations.extend(send_requests(telemetry, 20))
        assert_not_slowed(durations)
        wait_until(lambda: dropped(telemetry, "export_failed") > 0, 15.0)
        lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
        assert lines == [lines[0]]
        assert lines[0].startswith(f"Metric export failed: connection refused to "
                                   f"udp://127.0.0.1:{port}")  # fmt: skip
    finally:
        telemetry.shutdown(0.5)


def test_a_forked_child_sends_only_its_own_increase() -> None:
    """Values in memory (no multiprocess directory): a child forked after an unsent increase
    starts from the values at the fork, so the parent's increase is not sent twice. (Forked in
    a fresh interpreter: a fork of the test process inherits other tests' threads and locks.)"""
    code = textwrap.dedent(
        """
        import json, os, weakref
        from prometheus_client import CollectorRegistry, Counter
        from telemetry_web.metrics.outputs._statsd import sent_for

        registry = CollectorRegistry()
        counter = Counter("forked", "F.", registry=registry)
        sent = sent_for(registry)
        sent.source = weakref.ref(registry)
        counter.inc(5)
        sent.values[("forked_total", ())] = 2.0  # the parent sent 2 of its 5 so far
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps(sent.values.get(("forked_total", ()))).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(json.dumps([json.loads(os.read(read, 100)), sent.values[("forked_total", ())]]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    child, parent = json.loads(result.stdout.strip().splitlines()[-1])
    assert child == 5.0  # the child starts from the values at the fork
    assert parent == 2.0  # the parent still owes its 3
