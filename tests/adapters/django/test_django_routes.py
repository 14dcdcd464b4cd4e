"""Route labels: path() templates joined across include(), re_path, DRF routers, <unmatched>."""

from __future__ import annotations

import uuid
from typing import Any

import django.urls
import pytest
from django.test import Client, override_settings

from telemetry_web.django import _routes
from telemetry_web.django._routes import route_label
from telemetry_web.testing import CapturedTelemetry

from ..._metrics import Scrape
from ._support import UNMATCHED, count, labels, request_lines
from .conftest import MIDDLEWARE, Fetch

# (method, path, route label, status)
ROUTES = [
    ("GET", "/api/v1/users/7", "/api/v1/users/<int:user_id>", 200),
    ("GET", "/api/v1/users/999", "/api/v1/users/<int:user_id>", 404),
    ("GET", "/api/hello-async", "/api/hello-async", 200),
    ("GET", "/pages/hello-world", "/pages/<slug:slug>", 200),
    ("GET", f"/items/{uuid.UUID(int=7)}", "/items/<uuid:item_id>", 200),
    ("GET", "/files/a/b/c.txt", "/files/<path:rest>", 200),
    ("GET", "/archive/2024/", "/archive/<year>/", 200),
    ("GET", "/legacy/posts/42/", "/legacy/posts/<post_id>/", 200),
    ("GET", "/", "/", 200),
    ("GET", "/nowhere", UNMATCHED, 404),
    ("GET", "/api/v1/users/abc", UNMATCHED, 404),
    ("GET", "/drf/", "/drf/", 200),
    ("GET", "/drf/users/", "/drf/users/", 200),
    ("GET", "/drf/users/1/", "/drf/users/<pk>/", 200),
    ("GET", "/drf/users/2/", "/drf/users/<pk>/", 404),
    ("POST", "/drf/users/1/promote/", "/drf/users/<pk>/promote/", 202),
    ("GET", "/drf/users/1.json", "/drf/users/<pk>.<format>/?", 200),
]


@pytest.mark.parametrize(("method", "path", "route", "status"), ROUTES)
def test_route_label_on_span_log_and_metrics(
    captured: CapturedTelemetry, fetch: Fetch, method: str, path: str, route: str, status: int
) -> None:
    """Each request is labelled with its URL pattern (joined across includes) everywhere."""
    response = fetch(path, method)
    assert response.status_code == status
    assert count(captured, method, route, status) == 1
    (span,) = captured.spans()
    assert span.name == (method if route == UNMATCHED else f"{method} {route}")
    assert (span.attributes or {}).get("http.route") == (None if route == UNMATCHED else route)
    (line,) = request_lines(captured.logs())
    assert line["route"] == route
    assert line["path"] == path


def test_metrics_endpoint_counts_every_route_exactly(captured: CapturedTelemetry) -> None:
    """/metrics, parsed, holds exactly one series per (method, route, status) with its count."""
    client = Client(raise_request_exception=False)
    expected: dict[tuple[str, str, str], float] = {}
    for method, path, route, status in ROUTES:
        for _ in range(2):
            assert client.generic(method, path).status_code == status
        key = (method, route, str(status))
        expected[key] = expected.get(key, 0) + 2
    scrape = Scrape.parse(client.get("/metrics").content.decode())
    assert scrape.counts() == expected
    assert scrape.counts("http_request_duration_seconds_count") == expected
    in_progress = scrape.series("http_requests_in_progress")
    assert {lbl["route"] for lbl, _ in in_progress} == {r for _, _, r, _ in ROUTES}
    assert all(value == 0 for _, value in in_progress)
    assert (
        scrape.value("http_requests_total", **labels("GET", "/api/v1/users/<int:user_id>", 404))
        == 2
    )


@pytest.mark.parametrize(
    ("route", "label"),
    [
        ("api/users/<int:id>", "/api/users/<int:id>"),
        ("", "/"),
        ("^archive/(?P<year>[0-9]{4})/$", "/archive/<year>/"),
        ("drf/users/(?P<pk>[^/.]+)/$", "/drf/users/<pk>/"),
        (r"drf/users/(?P<pk>[^/.]+)\.(?P<format>[a-z0-9]+)/?$", "/drf/users/<pk>.<format>/?"),
        (r"^re/(?P<a>(x|y)+)/(?P<b>[()]+)\Z", "/re/<a>/<b>"),
        (r"^page/(\d+)/$", r"/page/(\d+)/"),
        ("^re/users/<int:user_id>", "/re/users/<int:user_id>"),
        (r"^price\$", "/price$"),
    ],
)
def test_route_label_table(route: str, label: str) -> None:
    """resolver_match.route becomes a label: leading slash, anchors dropped, named groups."""
    assert route_label(route) == label


def test_begin_route_is_cached_per_path_and_bounded(
    captured: CapturedTelemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The up-front resolve runs once per (urlconf, path); the cache never exceeds its bound."""
    calls: list[str] = []
    real_resolve = django.urls.resolve  # what _routes imported

    def counting(path: str, urlconf: Any = None) -> Any:
        calls.append(path)
        return real_resolve(path, urlconf)

    monkeypatch.setattr(_routes, "resolve", counting)
    client = Client()
    for _ in range(3):
        client.get("/api/v1/users/7")
    assert calls == ["/api/v1/users/7"]
    middleware = client.handler._middleware_chain.__wrapped__  # Django's @wraps
    middleware.routes.max_paths = 4
    for n in range(10):
        client.get(f"/pages/p{n}")
    assert len(middleware.routes._by_path) == 4
    assert len(calls) == 11
    assert count(captured, "GET", "/pages/<slug:slug>", "200") == 10


@override_settings(
    MIDDLEWARE=[MIDDLEWARE[0], "tests.adapters.django.middleware.AlternateUrlconfMiddleware"]
)
def test_route_from_request_urlconf_set_later(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """A urlconf chosen by a later middleware is honoured: the end of the request corrects it."""
    assert fetch("/alt/5").status_code == 200
    assert count(captured, "GET", "/alt/<int:n>", "200") == 1
    (span,) = captured.spans()
    assert span.name == "GET /alt/<int:n>"
    assert captured.sample("http_requests_in_progress", method="GET", route=UNMATCHED) == 0
