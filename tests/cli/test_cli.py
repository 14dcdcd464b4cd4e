"""The ``telemetry`` CLI through click's CliRunner, on a store filled through the ASGI adapter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with 4 requests to /ok and 2 failing ones to /fail, each with an app log line."""
    path = tmp_path_factory.mktemp("store") / "t.db"
    telemetry = Telemetry(
        {"store": {"path": str(path)}, "logging": {"sinks": {"console": False}}},
        service="cli-test", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip
    log = telemetry.get_logger("app")

    async def ok(request: Request) -> Response:
        log.info("all good", item=7)
        return PlainTextResponse("ok")

    async def fail(request: Request) -> Response:
        log.warning("about to fail")
        raise RuntimeError("kaboom")

    app = TelemetryMiddleware(
        Starlette(routes=[Route("/ok", ok), Route("/fail", fail)]), telemetry=telemetry
    )

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(4):
                await client.get("/ok")
            for _ in range(2):
                await client.get("/fail")

    asyncio.run(drive())
    telemetry.shutdown()
    return str(path)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_traces_search_error_json(store: str) -> None:
    """``traces search --status error --json`` lists only the failed traces."""
    code, out, _ = run("traces", "search", "--service", "cli-test", "--status", "error",
                       "--json", "--store", store)  # fmt: skip
    assert code == 0
    found = json.loads(out)
    assert len(found) == 2
    assert {t["route"] for t in found} == {"/fail"}
    assert all(t["status"] == "error" and t["http_status"] == 500 for t in found)


def test_traces_search_table_filters(store: str) -> None:
    """The table view honours --route, --since, --min-duration, --attr and --limit."""
    code, out, _ = run("traces", "search", "--route", "/ok", "--since", "15m", "--limit", "3",
                       "--min-duration", "0ms", "--attr", "http.request.method=GET",
                       "--store", store)  # fmt: skip
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("TRACE ID")
    assert len(lines) == 4
    assert all("GET /ok" in line for line in lines[1:])
    code, out, _ = run("traces", "search", "--attr", "http.route=/nowhere", "--store", store)
    assert (code, out.strip()) == (0, "No traces match.")


def test_traces_show_waterfall_with_exception_and_logs(store: str) -> None:
    """``traces show`` draws the span bar, marks the error and shows its exception and logs."""
    _, out, _ = run("traces", "search", "--status", "error", "--json", "--store", store)
    trace_id = json.loads(out)[0]["trace_id"]
    code, out, _ = run("traces", "show", trace_id, "--store", store)
    assert code == 0
    assert f"Trace {trace_id}" in out
    assert "█" in out
    assert "GET /fail" in out
    assert "✗ ERROR" in out
    assert "RuntimeError: kaboom" in out
    assert "about to fail" in out
    assert "request" in out  # the request log line, under its span
    code, out, _ = run("traces", "show", trace_id[:12], "--json", "--store", store)
    document = json.loads(out)
    assert document["trace_id"] == trace_id
    assert {entry["event"] for entry in document["logs"]} >= {"about to fail", "request"}


def test_traces_stats(store: str) -> None:
    """``traces stats`` gives count, error rate and percentiles per route."""
    code, out, _ = run("traces", "stats", "--service", "cli-test", "--json", "--store", store)
    assert code == 0
    by_route = {r["route"]: r for r in json.loads(out)}
    assert by_route["/ok"]["count"] == 4
    assert by_route["/ok"]["errors"] == 0
    assert by_route["/fail"]["error_rate"] == 1.0
    assert 0 < by_route["/ok"]["p50"] <= by_route["/ok"]["p95"] <= by_route["/ok"]["p99"]
    code, out, _ = run("traces", "stats", "--since", "1h", "--store", store)
    assert code == 0
    assert "ERROR RATE" in out
    assert "100.0%" in out


def test_logs_tail_filters_and_follow(store: str) -> None:
    """``logs tail`` filters by level and trace id, and ``--follow`` polls within its bound."""
    code, out, _ = run("logs", "tail", "--service", "cli-test", "--level", "warning",
                       "--json", "--store", store)  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert {e["event"] for e in lines} == {"about to fail", "request"}  # 500s log at error
    trace_id = lines[0]["trace_id"]
    code, out, _ = run("logs", "tail", "--trace-id", trace_id, "--store", store)
    assert code == 0
    assert "about to fail" in out
    assert "all good" not in out
    code, out, _ = run("logs", "tail", "-n", "1", "--follow", "--follow-for", "0.3s",
                       "--interval", "0.1s", "--store", store)  # fmt: skip
    assert code == 0
    assert len(out.strip().splitlines()) == 1


def test_metrics_list_from_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``metrics list --dir`` reads a multiprocess directory."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        counter = Counter("jobs_total", "Jobs done.", ["queue"], registry=CollectorRegistry())
        counter.labels("a").inc()
        counter.labels("b").inc()
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    code, out, _ = run("metrics", "list", "--dir", str(tmp_path), "--json")
    assert code == 0
    assert {
        "name": "jobs_total",
        "type": "counter",
        "help": "Jobs done.",
        "series": 2,
    } in json.loads(out)


def test_metrics_list_from_a_url() -> None:
    """``metrics list --url`` scrapes a /metrics endpoint (served here by prometheus-client)."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    registry = CollectorRegistry()
    Counter("hits_total", "Hits.", registry=registry).inc()
    body = generate_latest(registry)

    def app(environ: object, start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [body]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        code, out, _ = run("metrics", "list", "--url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    assert "hits_total" in out
    assert "counter" in out


def test_config_check(tmp_path: Path) -> None:
    """``config check`` prints ok for a valid file and the engine's problem lines otherwise."""
    good = tmp_path / "good.yaml"
    good.write_text("service: shop\nstore:\n  retention: 7d\n  enabled: true\n")
    assert run("config", "check", str(good))[:2] == (0, "ok\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tracing:\n  sampling:\n    type: sometimes\nmetrics:\n  rules:\n"
                   "    - {name: x, query: y}\n")  # fmt: skip
    code, _, err = run("config", "check", str(bad))
    assert code == 1
    assert "tracing.sampling.type" in err
    code, out, _ = run("config", "check", str(good), "--json")
    assert json.loads(out)["ok"] is True


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("traces", "search", "--min-duration", "soon"), "is not a duration"),
        (("traces", "search", "--attr", "novalue"), "is not key=value"),
        (("traces", "search", "--limit", "0"), "--limit"),
        (("traces", "show"), "Missing argument"),
        (("metrics", "list", "--url", "http://x", "--dir", "/d"), "give at most one of --url"),
        (("metrics", "list", "--store", "/nonexistent/t.db"), "no telemetry store at"),
        (("metrics", "list", "--url", "http://127.0.0.1:1/metrics"), "cannot fetch"),
        (("traces", "search", "--store", "/nonexistent/t.db"), "no telemetry store at"),
        (("config", "check", "/nonexistent.yaml"), "nonexistent.yaml"),
    ],
)
def test_bad_arguments_give_one_line_and_non_zero_exit(
    args: tuple[str, ...], expected: str
) -> None:
    """Bad arguments and a missing store are one line on stderr, a non-zero exit, no traceback."""
    code, out, err = run(*args)
    assert code != 0
    assert expected in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err


def test_empty_store_and_unknown_trace(tmp_path: Path, store: str) -> None:
    """An empty store and an unknown trace id are one-line errors."""
    from telemetry_web.store import SQLiteStore

    empty = tmp_path / "empty.db"
    SQLiteStore(str(empty), retention=60).write()
    code, _, err = run("traces", "stats", "--store", str(empty))
    assert code == 1
    assert "is empty" in err
    code, _, err = run("traces", "show", "f" * 32, "--store", store)
    assert code == 1
    assert "no trace" in err


def test_store_path_from_the_environment(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --store, ``TELEMETRY_STORE__PATH`` names the store."""
    monkeypatch.setenv("TELEMETRY_STORE__PATH", store)
    code, out, _ = run("traces", "search", "--json")
    assert code == 0
    assert len(json.loads(out)) == 6


def test_telemetry_run_is_a_command_of_the_cli() -> None:
    """`telemetry run -- python -c ...` runs the command unchanged, with the bootstrap loaded
    at interpreter start (telemetry_web is imported before the command's own code)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = shutil.which("telemetry") or str(Path(sys.executable).with_name("telemetry"))
    code = "import sys; print('telemetry_web' in sys.modules, 6 * 7)"
    result = subprocess.run(
        [script, "run", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", "42"]
