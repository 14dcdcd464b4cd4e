"""``telemetry metrics list`` and ``metrics query`` on the metric history of a real app.

Requests go through TelemetryMiddleware in-process, the store snapshots every 0.2 s, and the
expected rates, error ratios and quantiles are computed here from the known requests and
buckets, independently of the store's code.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.cli import main

SCRIPT = Path(sys.executable).with_name("telemetry")
BUCKETS = [0.05, 0.1, 0.2, 0.4]
# /slow: 6 requests of 0.12 s (bucket 0.2) and 4 of 0.25 s (bucket 0.4)
SLOW = [0.12] * 6 + [0.25] * 4
ORDERS = 8  # /orders/{order_id}: ids 7 and 8 fail with a 500, all well under 0.05 s
FAILED = 2


def _quantile(q: float, bounds: list[float], counts: list[int]) -> float:
    """Prometheus' histogram_quantile from per-bucket (not cumulative) counts, written out."""
    total = sum(counts)
    rank = q * total
    seen = 0
    lower = 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if seen + count >= rank:
            return lower + (bound - lower) * (rank - seen) / count
        seen += count
        lower = bound
    raise AssertionError("rank past the finite buckets")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with the history of 10 requests to /slow and 8 to /orders/{order_id}."""
    path = tmp_path_factory.mktemp("history") / "t.db"
    telemetry = Telemetry(
        {"store": {"path": str(path)}, "logging": {"sinks": {"console": False}},
         "metrics": {"duration_buckets": BUCKETS,
                     "collectors": {"prometheus": {"scrape_interval": "200ms"}}}},
        service="history-test", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params["d"]))
        return PlainTextResponse("slow")

    async def order(request: Request) -> Response:
        if int(request.path_params["order_id"]) > ORDERS - FAILED:
            raise RuntimeError("no such order")
        return PlainTextResponse("order")

    app = TelemetryMiddleware(
        Starlette(routes=[Route("/slow", slow), Route("/orders/{order_id:int}", order)]),
        telemetry=telemetry,
    )

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await asyncio.gather(
                *(client.get("/slow", params={"d": d}) for d in SLOW),
                *(client.get(f"/orders/{i}") for i in range(1, ORDERS + 1)),
            )
        await asyncio.sleep(0.7)  # several snapshots after the last request

    asyncio.run(drive())
    telemetry.shutdown()
    return str(path)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_snapshots_were_taken_every_interval(history: str) -> None:
    """Several snapshots, about 0.2 s apart, each with the HTTP series once."""
    with sqlite3.connect(history) as conn:
        times = [r[0] for r in conn.execute("SELECT ts FROM metric_snapshots ORDER BY ts")]
        counts = conn.execute(
            "SELECT p.ts, SUM(p.value) FROM metric_points p JOIN metric_series s "
            "ON s.id = p.series_id WHERE s.name = 'http_requests_total' GROUP BY p.ts "
            "ORDER BY p.ts"
        ).fetchall()
    assert len(times) >= 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(150 <= g <= 1000 for g in gaps[:-1]), gaps  # the last one: the shutdown snapshot
    assert counts[-1][1] == len(SLOW) + ORDERS


def test_list_reads_the_history(history: str) -> None:
    """No flag: each family with its type, label sets, latest value or rate, and help."""
    code, out, err = run("metrics", "list", "--store", history)
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    total = len(SLOW) + ORDERS
    # three label sets: (/slow, 200), (/orders/{order_id}, 200), (/orders/{order_id}, 500)
    assert rows["http_requests_total"][1:4] == ["counter", "3", f"{total / 60:.4g}/s"]
    assert rows["http_request_duration_seconds"][1:4] == ["histogram", "3", f"{total / 60:.4g}/s"]
    assert rows["http_requests_in_progress"][1:4] == ["gauge", "2", "0"]
    assert " ".join(rows["http_requests_total"][4:]) == (
        "HTTP requests handled, by method, route template and status."
    )
    assert out.startswith("History up to ")
    assert "rates over the last 1m" in out.splitlines()[0]


def test_list_json(history: str) -> None:
    """``--json``: the same facts, machine-readable."""
    code, out, _ = run("metrics", "list", "--store", history, "--json", "--since", "30s")
    assert code == 0
    families = {f["name"]: f for f in json.loads(out)["families"]}
    counter = families["http_requests_total"]
    assert counter["value_kind"] == "rate"
    assert counter["value"] == pytest.approx((len(SLOW) + ORDERS) / 30)
    assert families["http_requests_in_progress"]["value"] == 0


def _expected_by_route() -> dict[str, tuple[float, ...]]:
    """route -> (requests, error ratio, p50, p95, p99), from the requests sent."""
    slow_counts = [0, 0, SLOW.count(0.12), SLOW.count(0.25)]
    order_counts = [ORDERS, 0, 0, 0]
    return {
        "/orders/{order_id:int}": (ORDERS, FAILED / ORDERS,
                                   *(_quantile(q, BUCKETS, order_counts) for q in (.5, .95, .99))),
        "/slow": (len(SLOW), 0.0, *(_quantile(q, BUCKETS, slow_counts) for q in (.5, .95, .99))),
    }  # fmt: skip


def test_query_histogram_by_route(history: str) -> None:
    """Rate, error ratio and p50/p95/p99 per route in one 2-minute interval (the default step
    for an hour)."""
    code, out, err = run(
        "metrics", "query", "http_request_duration_seconds", "--by", "route", "--since", "1h",
        "--store", history,
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "http_request_duration_seconds (histogram), every 2m over the last 1h:"
    assert lines[1].split() == ["END", "ROUTE", "RATE", "ERRORS", "P50", "P95", "P99"]
    got = {line.split()[1]: line.split()[2:] for line in lines[2:]}
    expected = _expected_by_route()
    assert set(got) == set(expected)
    for route, (count, ratio, p50, p95, p99) in expected.items():
        assert got[route] == [
            f"{count / 120:.4g}/s", f"{ratio * 100:.1f}%",
            f"{p50 * 1000:.1f}ms", f"{p95 * 1000:.1f}ms", f"{p99 * 1000:.1f}ms",
        ]  # fmt: skip
    # the independent figures, spelled out once
    assert [round(x, 4) for x in expected["/slow"][2:]] == [0.1833, 0.375, 0.395]


def test_query_json_and_small_steps(history: str) -> None:
    """``--json`` with a 1 s step: the intervals' counts add up to the requests sent, and the
    quantiles of all intervals match the expected ones where an interval holds every request."""
    code, out, err = run(
        "metrics", "query", "http_request_duration_seconds", "--by", "route", "--since", "1m",
        "--step", "1s", "--store", history, "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["type"] == "histogram"
    assert doc["step"] == 1
    assert doc["by"] == ["route"]
    expected = _expected_by_route()
    for route, (count, ratio, *_) in expected.items():
        rows = [r for r in doc["rows"] if r["labels"] == {"route": route}]
        assert sum(r["rate"] * 1 for r in rows) == pytest.approx(count)
        busy = [r for r in rows if r["rate"] > 0]
        errors = sum(r["error_ratio"] * r["rate"] for r in busy)
        assert errors == pytest.approx(count * ratio)


def test_query_counter_and_gauge(history: str) -> None:
    """A counter gives its rate per group, a gauge its latest value."""
    code, out, _ = run(
        "metrics", "query", "http_requests_total", "--by", "route,status", "--since", "10m",
        "--step", "1m", "--store", history,
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "http_requests_total (counter), every 1m over the last 10m:"
    got = {tuple(line.split()[1:3]): line.split()[3] for line in lines[2:]}
    assert got == {
        ("/orders/{order_id:int}", "200"): f"{(ORDERS - FAILED) / 60:.4g}/s",
        ("/orders/{order_id:int}", "500"): f"{FAILED / 60:.4g}/s",
        ("/slow", "200"): f"{len(SLOW) / 60:.4g}/s",
    }
    code, out, _ = run("metrics", "query", "http_requests_in_progress", "--store", history)
    assert code == 0
    assert out.splitlines()[1].split() == ["END", "VALUE"]
    assert out.splitlines()[2].split()[1] == "0"


def test_query_where_filters_series(history: str) -> None:
    """``--where status=500`` keeps the failed requests only."""
    code, out, _ = run(
        "metrics", "query", "http_requests_total", "--where", "status=500", "--since", "10m",
        "--step", "1m", "--json", "--store", history,
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [r["rate"] for r in rows] == [pytest.approx(FAILED / 60)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("query", "http_request_duration"), "no metric named http_request_duration in the "
         "history; did you mean http_request_duration_seconds?"),
        (("query", "http_requests_total", "--since", "soon"), "is not a duration"),
        (("query", "http_requests_total", "--since", "0s"), "must be positive"),
        (("list", "--url", "http://x", "--dir", "/tmp"), "give at most one of --url or --dir"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(history: str, args: tuple[str, ...], expected: str) -> None:
    """Unknown metric, bad --since, conflicting sources: one line on stderr, exit non-zero."""
    code, _out, err = run("metrics", *args, "--store", history)
    assert code != 0
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err


def test_no_history_yet(tmp_path: Path) -> None:
    """A store with spans and logs but no snapshot yet, and no store at all: one clear line."""
    from telemetry_web.store import SQLiteStore

    db = tmp_path / "t.db"
    SQLiteStore(str(db), retention=3600).write()
    code, _, err = run("metrics", "list", "--store", str(db))
    assert code == 1
    assert "has no metric history yet" in err
    code, _, err = run("metrics", "query", "x", "--store", str(tmp_path / "none.db"))
    assert code == 1
    assert "no telemetry store at" in err


def test_installed_script(history: str) -> None:
    """The installed ``telemetry`` script answers the same query."""
    result = subprocess.run(
        [str(SCRIPT), "metrics", "query", "http_request_duration_seconds", "--by", "route",
         "--since", "1h", "--json", "--store", history],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["labels"]["route"]: r for r in json.loads(result.stdout)["rows"]}
    for route, (count, ratio, p50, p95, p99) in _expected_by_route().items():
        assert rows[route]["rate"] == pytest.approx(count / 120)
        assert rows[route]["error_ratio"] == pytest.approx(ratio)
        assert [rows[route][k] for k in ("p50", "p95", "p99")] == pytest.approx([p50, p95, p99])
