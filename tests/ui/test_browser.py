"""The page in headless Chromium over a store the sample app filled: search, the waterfall, the
interleaved log line, the live tail, routes, and the token when bound beyond loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._net import free_port
from .conftest import FAIL_TRACE, REPORT_TRACE, ROOT, SCRIPT, SampleApp

pytestmark = pytest.mark.server

SCREENSHOT = os.environ.get("TELEMETRY_UI_SCREENSHOT")  # docs/ui.png is made with this set


def _rows(page: Any) -> list[dict[str, str]]:
    """The waterfall's rows as the DOM has them, top to bottom."""
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        "#waterfall .wf-row",
        """rows => rows.map(r => ({
            type: r.classList.contains('log') ? 'log' : 'span',
            depth: r.dataset.depth,
            id: r.dataset.spanId || '',
            parent: r.dataset.parentId || '',
            error: r.classList.contains('error') ? 'yes' : 'no',
            text: (r.querySelector('.name') || r.querySelector('.event')).textContent,
            level: r.dataset.level || '',
        }))""",
    )
    return rows


def test_search_then_failing_trace(sample_app: SampleApp, start_ui: Any, page: Any) -> None:
    """Searching errors on /api/fail lists the failing trace; its page marks the span as an
    error, shows the exception event on click and the request's log line after the span."""
    ui = start_ui(sample_app.store)
    page.goto(ui.url)
    page.wait_for_selector("#trace-list")
    page.select_option("select[name=status]", "error")
    page.fill("input[name=route]", "/api/fail")
    page.click("#search button[type=submit]")
    page.wait_for_function("location.hash.includes('status=error')")
    page.wait_for_selector(f"#trace-list tr[data-trace-id='{FAIL_TRACE}']")
    listed = page.eval_on_selector_all(
        "#trace-list tr.trace-row", "rs => rs.map(r => r.dataset.traceId)"
    )
    assert listed == [FAIL_TRACE]
    page.click(f"tr[data-trace-id='{FAIL_TRACE}']")
    page.wait_for_selector("#waterfall")
    assert page.text_content("#trace-id") == FAIL_TRACE
    rows = _rows(page)
    assert [(r["type"], r["depth"], r["text"], r["error"], r["level"]) for r in rows] == [
        ("span", "0", "GET /api/fail", "yes", ""),
        ("log", "1", "request", "no", "error"),
    ]
    page.click("#waterfall .wf-row.span")
    details = page.text_content("#span-details")
    assert "exception" in details
    assert "RuntimeError" in details
    assert "the sample endpoint that always fails" in details
    assert "/api/fail" in details  # url.path among the attributes


def test_waterfall_order_and_nesting(
    sample_app: SampleApp, start_ui: Any, page: Any, tmp_path: Path
) -> None:
    """The /api/report trace: the server span, then its SQLAlchemy and Redis children one level
    in, by start time, each pointing at the server span, then the request log line."""
    ui = start_ui(sample_app.store)
    page.goto(ui.url + f"#/trace/{REPORT_TRACE}")
    page.wait_for_selector("#waterfall")
    rows = _rows(page)
    spans = [r for r in rows if r["type"] == "span"]
    assert [(r["depth"], r["text"]) for r in spans] == [
        ("0", "GET /api/report"),
        ("1", "SELECT"),
        ("1", "SET"),
    ]
    root = spans[0]["id"]
    assert spans[0]["parent"] == "b7ad6b7169203331"  # the caller's span from traceparent
    assert [r["parent"] for r in spans[1:]] == [root, root]
    # The request line (stamped to the millisecond) sits under the server span, after it.
    logs = [(i, r["depth"], r["text"]) for i, r in enumerate(rows) if r["type"] == "log"]
    assert [(depth, text) for _, depth, text in logs] == [("1", "request")]
    assert logs[0][0] >= 1
    lefts = page.eval_on_selector_all(
        "#waterfall .wf-row.span .wf-bar", "bars => bars.map(b => parseFloat(b.style.left))"
    )
    assert lefts[0] == 0
    assert lefts[0] < lefts[1] < lefts[2] < 100
    page.click("#waterfall .wf-row.span:has-text('SELECT')")
    assert "SELECT user_id, SUM(total) FROM orders" in page.text_content("#span-details")
    shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "ui.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_tail_opens_the_trace(sample_app: SampleApp, start_ui: Any, page: Any) -> None:
    """A failing request made while the tail is open shows up live (level filter on), and its
    trace id opens its trace."""
    ui = start_ui(sample_app.store)
    page.goto(ui.url + "#/logs?level=error")
    page.wait_for_function("document.getElementById('tail-status').textContent === 'live'")
    live_trace = "5a1e0000000000000000000000000001"
    assert sample_app.get("/api/fail", live_trace).status_code == 500
    link = page.wait_for_selector(f"#log-tail a[href='#/trace/{live_trace}']")
    levels = page.eval_on_selector_all("#log-tail .line", "ls => ls.map(l => l.dataset.level)")
    assert set(levels) == {"error"}
    link.click()
    page.wait_for_selector("#waterfall")
    assert page.text_content("#trace-id") == live_trace
    assert _rows(page)[0]["text"] == "GET /api/fail"


def test_routes_chart_and_slowest(sample_app: SampleApp, start_ui: Any, page: Any) -> None:
    """The routes table lists the sample's routes; /api/slow has a latency chart with a point per
    interval and its slowest trace links to it."""
    ui = start_ui(sample_app.store)
    page.goto(ui.url + "#/routes?window=1h")
    page.wait_for_selector("#route-list")
    routes = page.eval_on_selector_all("#route-list tr.route-row td:nth-child(2)",
                                       "cs => cs.map(c => c.textContent)")  # fmt: skip
    assert {"/api/fail", "/api/report", "/api/slow", "/api/users"} <= set(routes)
    page.click("#route-list tr.route-row:has-text('/api/slow')")
    page.wait_for_selector("#latency-chart")
    assert page.locator("#latency-chart circle.point.p99").count() >= 1
    page.click("#slowest tr")
    page.wait_for_selector("#waterfall")
    assert _rows(page)[0]["text"] == "GET /api/slow"


def test_token_required_beyond_loopback(sample_app: SampleApp, start_ui: Any, page: Any) -> None:
    """Bound to 0.0.0.0 the UI refuses a request without the token (API and page), accepts the
    bearer header, and `?token=` on the first load sets a cookie the page then uses."""
    token = "s3cret-token"
    ui = start_ui(sample_app.store, host="0.0.0.0", token=token)
    assert "http://0.0.0.0:" in ui.output
    api = ui.url + "api/traces?status=error"
    refused = httpx.get(api, timeout=5)
    assert refused.status_code == 401
    assert FAIL_TRACE not in refused.text
    assert httpx.get(api, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert httpx.get(ui.url + "api/logs/stream", timeout=5).status_code == 401
    allowed = httpx.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert allowed.status_code == 200
    assert FAIL_TRACE in {t["trace_id"] for t in allowed.json()["traces"]}

    assert page.goto(ui.url).status == 401
    page.goto(ui.url + f"?token={token}")
    assert "token" not in page.url
    page.wait_for_selector(f"#trace-list tr[data-trace-id='{FAIL_TRACE}']")


def test_non_loopback_without_token_is_refused(tmp_path: Path) -> None:
    """`telemetry ui --host 0.0.0.0` without a token exits 1 with one line naming the fix."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TELEMETRY_UI_TOKEN", None)
    done = subprocess.run(
        [str(SCRIPT), "ui", "--store", str(tmp_path / "t.db"), "--host", "0.0.0.0", "--port",
         str(free_port())],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        "telemetry: error: --host 0.0.0.0 is reachable from other machines: give --token (or "
        "set TELEMETRY_UI_TOKEN) so that every request must carry it\n"
    )
