"""RED metrics recorded by the ASGI middleware: route templates, exact counts, sizes, namings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NoReturn

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Host, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.testing import capture_telemetry

from ._support import (
    BASE_LABELS,
    build_fastapi,
    build_starlette,
    client_for,
    labels,
    scrape,
    scrape_telemetry,
)
from .conftest import FinishedSpans, MakeTelemetry

pytestmark = pytest.mark.asyncio

DURATION_COUNT = "http_request_duration_seconds_count"

# (method, path, expected route label, expected status)
STARLETTE_CASES = [
    ("GET", "/api/users/42", "/api/users/{user_id}", 200),
    ("GET", "/v1/users/7", "/v1/users/{id:int}", 200),
    ("GET", "/no/such/path", "<unmatched>", 404),
    ("GET", "/v1/users/not-an-int", "<unmatched>", 404),
    ("DELETE", "/api/users/42", "/api/users/{user_id}", 405),
]


def starlette_app(tel: Telemetry) -> Starlette:
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    return app


@pytest.mark.parametrize(("method", "path", "route", "status"), STARLETTE_CASES)
async def test_starlette_route_label_and_status(
    tel: Telemetry, method: str, path: str, route: str, status: int
) -> None:
    """Each Starlette request is counted once under its route template and response status."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.request(method, path)
        assert response.status_code == status
        metrics = await scrape(client)
    assert metrics.value("http_requests_total", **labels(method, route, status)) == 1
    assert metrics.label_sets("http_requests_total") == [labels(method, route, status)]
    assert metrics.value(DURATION_COUNT, **labels(method, route, status)) == 1


async def test_counts_are_exact_across_routes(tel: Telemetry) -> None:
    """Repeated requests add up per (method, route, status) and nothing else is counted."""
    sent = {
        ("GET", "/api/users/1"): 3,
        ("GET", "/api/users/2"): 2,
        ("GET", "/v1/users/5"): 4,
        ("GET", "/nope"): 2,
        ("GET", "/also/nope"): 1,
        ("PUT", "/api/users/1"): 1,
    }
    async with client_for(starlette_app(tel)) as client:
        for (method, path), times in sent.items():
            for _ in range(times):
                await client.request(method, path)
        metrics = await scrape(client)

    expected = {
        ("GET", "/api/users/{user_id}", "200"): 5,
        ("GET", "/v1/users/{id:int}", "200"): 4,
        ("GET", "<unmatched>", "404"): 3,
        ("PUT", "/api/users/{user_id}", "405"): 1,
    }
    counted = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in metrics.named("http_requests_total")
    }
    assert counted == expected
    durations = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in metrics.named(DURATION_COUNT)
    }
    assert durations == expected
    for s in metrics.named("http_requests_total"):
        assert set(s.labels) == {"service", "environment", "method", "route", "status"}
        assert s.labels["service"] == BASE_LABELS["service"]
        assert s.labels["environment"] == BASE_LABELS["environment"]


async def test_in_progress_gauge_returns_to_zero(tel: Telemetry) -> None:
    """``http_requests_in_progress`` is back to 0 for every route once the requests are done."""
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        await client.get("/nope")
        await client.get("/boom")
        metrics = await scrape(client)
    gauges = metrics.named("http_requests_in_progress")
    assert {s.labels["route"] for s in gauges} == {"/api/users/{user_id}", "<unmatched>", "/boom"}
    for s in gauges:
        assert set(s.labels) == {"service", "environment", "method", "route"}
        assert s.value == 0


async def test_request_and_response_sizes(tel: Telemetry) -> None:
    """Size histogram sums equal the body bytes the client sent and received."""
    bodies = [b"x" * 1234, b"y" * 10, b""]
    received = 0
    async with client_for(starlette_app(tel)) as client:
        for body in bodies:
            response = await client.post("/api/users/9", content=body)
            assert response.status_code == 200
            assert response.content == b"echo:" + body
            received += len(response.content)
        metrics = await scrape(client)
    series = labels("POST", "/api/users/{user_id}", 200)
    assert metrics.value("http_request_size_bytes_count", **series) == len(bodies)
    assert metrics.value("http_request_size_bytes_sum", **series) == sum(map(len, bodies))
    assert metrics.value("http_response_size_bytes_count", **series) == len(bodies)
    assert metrics.value("http_response_size_bytes_sum", **series) == received


async def test_duration_histogram_buckets_are_cumulative(tel: Telemetry) -> None:
    """The duration histogram's +Inf bucket equals its count and the sum is positive."""
    async with client_for(starlette_app(tel)) as client:
        for _ in range(3):
            await client.get("/api/users/3")
        metrics = await scrape(client)
    series = labels("GET", "/api/users/{user_id}", 200)
    assert metrics.value(DURATION_COUNT, **series) == 3
    assert metrics.value("http_request_duration_seconds_bucket", **series, le="+Inf") == 3
    assert metrics.value("http_request_duration_seconds_sum", **series) > 0


@pytest.mark.parametrize(
    ("method", "path", "route", "status"),
    [
        ("GET", "/v2/items/5", "/v2/items/{item_id}", 200),
        ("GET", "/v2/inner/things/abc", "/v2/inner/things/{thing_id}", 200),
        ("DELETE", "/v2/items/5", "/v2/items/{item_id}", 405),
        ("GET", "/v2/nothing", "<unmatched>", 404),
    ],
)
async def test_fastapi_included_router_template(
    tel: Telemetry, method: str, path: str, route: str, status: int
) -> None:
    """Routes of an APIRouter included under a prefix are labelled with the full template."""
    app = build_fastapi()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.request(method, path)
        assert response.status_code == status
        metrics = await scrape(client)
    assert metrics.label_sets("http_requests_total") == [labels(method, route, status)]
    assert metrics.value("http_requests_total", **labels(method, route, status)) == 1


async def test_head_request_recorded_as_head(tel: Telemetry) -> None:
    """A HEAD request is counted with method HEAD under the GET route's template."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.head("/api/users/1")
        assert response.status_code == 200
        metrics = await scrape(client)
    assert metrics.label_sets("http_requests_total") == [
        labels("HEAD", "/api/users/{user_id}", 200)
    ]


async def test_unknown_method_is_other(tel: Telemetry) -> None:
    """A method outside the known set is labelled ``_OTHER``."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.request("PURGE", "/api/users/1")
        assert response.status_code == 405
        metrics = await scrape(client)
    assert metrics.label_sets("http_requests_total") == [
        labels("_OTHER", "/api/users/{user_id}", 405)
    ]


async def test_otel_naming(make_telemetry: MakeTelemetry) -> None:
    """``metrics.naming: otel`` records the OpenTelemetry names and labels, and no default names."""
    tel = make_telemetry(metrics={"naming": "otel"})
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        await client.get("/api/users/2")
        metrics = await scrape(client)
    series = {
        **BASE_LABELS,
        "http_request_method": "GET",
        "http_route": "/api/users/{user_id}",
        "http_response_status_code": "200",
    }
    assert metrics.value("http_server_request_duration_seconds_count", **series) == 2
    assert metrics.label_sets("http_server_request_duration_seconds_count") == [series]
    assert metrics.named("http_requests_total") == []
    assert metrics.named(DURATION_COUNT) == []
    for s in metrics.named("http_server_active_requests"):
        assert s.value == 0


@pytest.mark.parametrize("layout", ["add_middleware twice", "wrapped and add_middleware"])
async def test_second_middleware_copy_records_nothing(tel: Telemetry, layout: str) -> None:
    """A second copy of the middleware passes the request through without recording it again."""
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    outer: ASGIApp
    if layout == "add_middleware twice":
        app.add_middleware(TelemetryMiddleware, telemetry=tel)
        outer = app
    else:
        outer = TelemetryMiddleware(app, telemetry=tel)
    async with client_for(outer) as client:
        response = await client.get("/api/users/1")
        assert response.status_code == 200
        assert len(response.headers.get_list("x-request-id")) == 1
        metrics = await scrape(client)
    assert metrics.value("http_requests_total", **labels("GET", "/api/users/{user_id}", 200)) == 1
    assert metrics.value(DURATION_COUNT, **labels("GET", "/api/users/{user_id}", 200)) == 1


async def _plain_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"plain"})


def _resolver(scope: Scope) -> str | None:
    if scope["path"].startswith("/things/"):
        return "/things/{id}"
    return None


def _broken_resolver(scope: Scope) -> NoReturn:
    raise KeyError("resolver bug")


@pytest.mark.parametrize(
    ("resolver", "path", "route"),
    [
        (None, "/things/1", "<unmatched>"),
        (_resolver, "/things/1", "/things/{id}"),
        (_resolver, "/other", "<unmatched>"),
        (_broken_resolver, "/things/1", "<unmatched>"),
    ],
)
async def test_route_resolver_for_plain_asgi_apps(
    tel: Telemetry, resolver: Callable[[Scope], str | None] | None, path: str, route: str
) -> None:
    """Apps without a Starlette router use ``route_resolver``; a failing one fails no request."""
    app = TelemetryMiddleware(_plain_asgi, telemetry=tel, route_resolver=resolver)
    async with client_for(app) as client:
        response = await client.get(path)
        metrics = await scrape(client)
    assert response.status_code == 200
    assert metrics.label_sets("http_requests_total") == [labels("GET", route, 200)]


async def test_in_progress_gauge_counts_the_running_request(tel: Telemetry) -> None:
    """While a request runs, ``http_requests_in_progress`` for its route is 1."""

    async def watch(request: Request) -> Response:
        now = scrape_telemetry(tel)
        series = {k: v for k, v in labels("GET", "/watch", 200).items() if k != "status"}
        return JSONResponse({"in_progress": now.value("http_requests_in_progress", **series)})

    app = Starlette(routes=[Route("/watch", watch)])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        during = (await client.get("/watch")).json()["in_progress"]
        metrics = await scrape(client)
    assert during == 1
    series = {k: v for k, v in labels("GET", "/watch", 200).items() if k != "status"}
    assert metrics.value("http_requests_in_progress", **series) == 0


async def test_host_routes_resolve_per_host(tel: Telemetry) -> None:
    """With Host routing, the same path on two hosts is labelled with each host's own template."""

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Host("a.example", app=Router(routes=[Route("/x/{a_id}", ok)])),
            Host("b.example", app=Router(routes=[Route("/x/{b_id}", ok)])),
        ]
    )
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        assert (await client.get("http://a.example/x/1")).status_code == 200
        assert (await client.get("http://b.example/x/1")).status_code == 200
        metrics = await scrape(client, "/metrics")
    routes = sorted(s.labels["route"] for s in metrics.named("http_requests_total"))
    assert routes == ["/x/{a_id}", "/x/{b_id}"]


async def test_concurrent_requests_are_counted_exactly(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """Fifty concurrent requests give exactly fifty counts and spans, and none left in progress."""
    async with client_for(starlette_app(tel)) as client:
        responses = await asyncio.gather(*(client.get(f"/api/users/{i}") for i in range(50)))
        metrics = await scrape(client)
    assert [r.status_code for r in responses] == [200] * 50
    assert len({r.headers["x-request-id"] for r in responses}) == 50
    series = labels("GET", "/api/users/{user_id}", 200)
    assert metrics.value("http_requests_total", **series) == 50
    assert metrics.value(DURATION_COUNT, **series) == 50
    in_progress = {k: v for k, v in series.items() if k != "status"}
    assert metrics.value("http_requests_in_progress", **in_progress) == 0
    spans = finished_spans(tel)
    assert len(spans) == 50
    assert len({s.context.trace_id for s in spans}) == 50
    assert all(s.parent is None for s in spans)


async def test_request_size_counts_declared_body_the_app_never_reads() -> None:
    """A POST answered 405 without reading its body still records its Content-Length."""

    async def only_get(request: Request) -> Response:
        return PlainTextResponse("ok")

    captured = capture_telemetry({"metrics": {"size_histograms": True}})
    try:
        app = Starlette(routes=[Route("/only-get", only_get, methods=["GET"])])
        app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
        async with client_for(app) as client:
            response = await client.post("/only-get", content=b"x" * 1234)
        assert response.status_code == 405
        labels = {"method": "POST", "route": "/only-get", "status": "405"}
        assert captured.sample("http_request_size_bytes_sum", **labels) == 1234.0
        assert captured.sample("http_request_size_bytes_count", **labels) == 1.0
    finally:
        captured.close()
