"""The UI's endpoints in-process: the token guard, parameter errors, and loopback detection."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from telemetry_web.cli.ui import is_loopback
from telemetry_web.ui import create_app


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
     ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    """127.0.0.0/8, ::1 and localhost are loopback; wildcard, LAN addresses and names are not."""
    assert is_loopback(host) is loopback


def _client(tmp_path: Path, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(str(tmp_path / "missing.db"), token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


@pytest.mark.parametrize(
    ("headers", "cookies", "status"),
    [({}, {}, 401), ({"Authorization": "Bearer nope"}, {}, 401),
     ({"Authorization": "Bearer t0k"}, {}, 200), ({"Authorization": "bearer t0k"}, {}, 200),
     ({}, {"telemetry_ui_token": "t0k"}, 200), ({}, {"telemetry_ui_token": "x"}, 401)],
)  # fmt: skip
async def test_token_guard(
    tmp_path: Path, headers: dict[str, str], cookies: dict[str, str], status: int
) -> None:
    """Every request needs the bearer token or the cookie, the page itself included."""
    async with _client(tmp_path, "t0k") as client:
        client.cookies.update(cookies)
        response = await client.get("/", headers=headers)
    assert response.status_code == status


async def test_token_query_sets_cookie_and_leaves_the_url(tmp_path: Path) -> None:
    """`?token=` is exchanged for an HttpOnly, SameSite=Strict cookie and a redirect without it."""
    async with _client(tmp_path, "t0k") as client:
        response = await client.get("/?token=t0k&x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/?x=1"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("telemetry_ui_token=t0k;")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


@pytest.mark.parametrize(
    ("query", "error"),
    [("status=teapot", "status='teapot' is not one of error, ok, 2xx, 3xx, 4xx, 5xx"),
     ("min_ms=-1", "min_ms='-1' is not a non-negative number"),
     ("since=soon", "since='soon' is not a duration such as 15m or 1h"),
     ("trace_id=xyz", "trace_id='xyz' is not a hexadecimal trace id or prefix"),
     ("before=12", "before='12' is not a cursor from a previous page")],
)  # fmt: skip
async def test_bad_search_parameters(tmp_path: Path, query: str, error: str) -> None:
    """A parameter the search cannot use is a 400 naming it, the value and what was expected."""
    async with _client(tmp_path) as client:
        response = await client.get(f"/api/traces?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": error}


async def test_missing_store_is_503(tmp_path: Path) -> None:
    """Without a store file the endpoints answer 503 with the store's own message."""
    async with _client(tmp_path) as client:
        response = await client.get("/api/traces/4bf92f3577b34da6a3ce929d0e0e4736")
    assert response.status_code == 503
    assert response.json()["error"].startswith("no telemetry store at ")


async def test_static_assets_are_served(tmp_path: Path) -> None:
    """The page and its script and style come from the package (no CDN)."""
    async with _client(tmp_path) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        style = await client.get("/static/style.css")
    assert page.status_code == script.status_code == style.status_code == 200
    assert '<script src="static/app.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")


def _store(path: Path, now: float) -> list[str]:
    """Four one-span traces of service svc, route /a (200, 404, 500, 404; 10 s apart, newest
    last, 10-40 ms), each with a request line whose packed fields hold its order id; their ids."""
    import json

    from telemetry_web.store import SQLiteStore

    ids, spans, logs = [], [], []
    for i, status in enumerate((200, 404, 500, 404)):
        trace = f"{i + 1:x}" * 32
        ids.append(trace)
        start = now - 100 + i * 10
        spans.append(
            (trace, f"{i + 1:x}" * 16, None, "GET /a", "server", "svc", "/a", status,
             int(start * 1e9), (i + 1) * 10_000_000, "error" if status >= 500 else "unset",
             None, json.dumps({"http.request.method": "GET"}), "[]",
             json.dumps({"service.name": "svc"}))
        )  # fmt: skip
        logs.append((start + 0.001, "info", 20, "app", "svc", "request", trace, None, None,
                     json.dumps({"order_id": f"Order-{i}"})))  # fmt: skip
    store = SQLiteStore(str(path), retention=86400)
    store.write(spans=spans, logs=logs)
    store.close()
    return ids


async def test_search_pages_come_from_the_store_reader(tmp_path: Path) -> None:
    """Status class, text in packed log fields (any case) and keyset pages through
    ``before``: the exact traces, newest first, and no cursor after the last page."""
    import time

    ids = _store(tmp_path / "t.db", time.time())
    app = create_app(str(tmp_path / "t.db"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        by_class = (await client.get("/api/traces?status=4xx")).json()
        first = (await client.get("/api/traces?text=order-&limit=3")).json()
        second = await client.get(f"/api/traces?text=order-&limit=3&before={first['next']}")
        one = (await client.get("/api/traces?text=ORDER-2")).json()
    assert [(t["trace_id"], t["http_status"]) for t in by_class["traces"]] == [
        (ids[3], 404), (ids[1], 404)
    ]  # fmt: skip
    assert by_class["next"] is None
    assert [t["trace_id"] for t in first["traces"]] == [ids[3], ids[2], ids[1]]
    assert [t["trace_id"] for t in second.json()["traces"]] == [ids[0]]
    assert second.json()["next"] is None
    assert [(t["trace_id"], t["status"], t["span_count"]) for t in one["traces"]] == [
        (ids[2], "error", 1)
    ]


async def test_route_endpoint_reads_series_slowest_and_failing_from_the_spans(
    tmp_path: Path,
) -> None:
    """Without a metric history, a route's points, slowest and failing traces come from its
    spans: one point per interval with requests, slowest first, the failing one."""
    import time

    ids = _store(tmp_path / "t.db", time.time())
    app = create_app(str(tmp_path / "t.db"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        body = (await client.get("/api/route?service=svc&route=/a&window=15m")).json()
    assert body["source"] == "spans"
    counts = [round(p["rate"] * (p["end"] - p["start"])) for p in body["points"]]
    assert sum(counts) == 4
    assert sum(c * p["error_ratio"] for c, p in zip(counts, body["points"], strict=True)) == 1
    assert (min(p["p50"] for p in body["points"]), max(p["p99"] for p in body["points"])) == (
        0.01, 0.04
    )  # fmt: skip
    assert [t["trace_id"] for t in body["slowest"]] == [ids[3], ids[2], ids[1], ids[0]]
    assert [t["trace_id"] for t in body["failing"]] == [ids[2]]
