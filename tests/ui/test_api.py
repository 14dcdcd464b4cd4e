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
