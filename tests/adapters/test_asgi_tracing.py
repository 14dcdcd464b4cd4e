"""Server spans from the ASGI middleware: one per request, attributes, incoming trace context."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.tracing._global import GLOBAL_PROVIDER

from ._support import build_fastapi, build_starlette, call_asgi, client_for, scrape
from .conftest import FinishedSpans

pytestmark = pytest.mark.asyncio

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
VALID_TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def starlette_app(tel: Telemetry) -> Starlette:
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    return app


async def test_one_server_span_with_attributes(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """A request yields exactly one SERVER span named by method and route, with HTTP attributes."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.get("/api/users/42", headers={"User-Agent": "adapter-tests/1.0"})
    assert response.status_code == 200
    spans = finished_spans(tel)
    assert len(spans) == 1
    span = spans[0]
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /api/users/{user_id}"
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/api/users/{user_id}"
    assert attributes["url.path"] == "/api/users/42"
    assert attributes["url.scheme"] == "http"
    assert attributes["server.address"] == "testserver"
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["user_agent.original"] == "adapter-tests/1.0"
    assert attributes["http.response.status_code"] == 200
    assert span.parent is None
    assert span.status.is_ok


@pytest.mark.parametrize(
    ("path", "name", "route_attribute"),
    [
        ("/v1/users/3", "GET /v1/users/{id:int}", "/v1/users/{id:int}"),
        ("/nowhere", "GET", None),
    ],
)
async def test_span_name_for_mounted_and_unmatched(
    tel: Telemetry, finished_spans: FinishedSpans, path: str, name: str, route_attribute: str | None
) -> None:
    """Mounted routes name the span by the joined template; unmatched ones have no http.route."""
    async with client_for(starlette_app(tel)) as client:
        await client.get(path)
    (span,) = finished_spans(tel)
    assert span.name == name
    assert (span.attributes or {}).get("http.route") == route_attribute


async def test_valid_traceparent_becomes_parent(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """A valid incoming ``traceparent`` makes the server span a child in the caller's trace."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.get("/api/users/1", headers={"traceparent": VALID_TRACEPARENT})
    assert response.status_code == 200
    (span,) = finished_spans(tel)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert format(span.context.span_id, "016x") != PARENT_ID


MALFORMED_TRACEPARENTS = {
    "forbidden version ff": f"ff-{TRACE_ID}-{PARENT_ID}-01".encode(),
    "short trace id": f"00-{TRACE_ID[:-2]}-{PARENT_ID}-01".encode(),
    "short span id": f"00-{TRACE_ID}-{PARENT_ID[:-2]}-01".encode(),
    "all-zero trace id": f"00-{'0' * 32}-{PARENT_ID}-01".encode(),
    "all-zero span id": f"00-{TRACE_ID}-{'0' * 16}-01".encode(),
    "non-hex trace id": f"00-{'z' * 32}-{PARENT_ID}-01".encode(),
    "uppercase hex": f"00-{TRACE_ID.upper()}-{PARENT_ID}-01".encode(),
    "trailing data on version 00": f"{VALID_TRACEPARENT}-extra".encode(),
    "empty": b"",
    "huge header": (VALID_TRACEPARENT + "-" + "a" * 65536).encode(),
    "huge garbage": b"x" * 65536,
    "non-UTF-8 bytes": b"00-\xff\xfe" + TRACE_ID[4:].encode() + f"-{PARENT_ID}-01".encode(),
    "latin-1 in ids": f"00-{TRACE_ID[:-1]}\xe9-{PARENT_ID}-01".encode("latin-1"),
}


@pytest.mark.parametrize(
    "value", MALFORMED_TRACEPARENTS.values(), ids=MALFORMED_TRACEPARENTS.keys()
)
async def test_malformed_traceparent_starts_new_root(
    tel: Telemetry, finished_spans: FinishedSpans, value: bytes
) -> None:
    """A malformed ``traceparent`` (raw ASGI header bytes) gives a new root span and a 200."""
    response = await call_asgi(
        starlette_app(tel),
        "/api/users/1",
        headers=[(b"traceparent", value), (b"tracestate", b"vendor=1")],
    )
    assert response.status == 200
    (span,) = finished_spans(tel)
    assert span.parent is None
    assert span.context.trace_id != 0
    assert format(span.context.trace_id, "032x") != TRACE_ID
    assert (span.attributes or {})["http.response.status_code"] == 200


async def test_unknown_method_other_with_original(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """An unknown method is ``_OTHER``, the original in http.request.method_original."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.request("PURGE", "/api/users/1")
    assert response.status_code == 405
    (span,) = finished_spans(tel)
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"
    assert attributes["http.route"] == "/api/users/{user_id}"
    assert span.name == "HTTP /api/users/{user_id}"


async def test_head_span(tel: Telemetry, finished_spans: FinishedSpans) -> None:
    """A HEAD request's span carries method HEAD."""
    async with client_for(starlette_app(tel)) as client:
        await client.head("/api/users/1")
    (span,) = finished_spans(tel)
    assert (span.attributes or {})["http.request.method"] == "HEAD"
    assert span.name == "HEAD /api/users/{user_id}"


async def test_fastapi_request_yields_exactly_one_span(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """With the telemetry's provider global, a FastAPI request exports only our one span."""
    assert trace.get_tracer_provider() is GLOBAL_PROVIDER, (
        "precondition: another tracer provider was made global earlier in this process"
    )
    assert GLOBAL_PROVIDER.delegate is tel.tracer_provider
    app = build_fastapi()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/v2/items/5")
        assert response.status_code == 200
        metrics = await scrape(client)
    spans = finished_spans(tel)
    assert len(spans) == 1, [(s.name, s.instrumentation_scope) for s in spans]
    assert spans[0].kind is SpanKind.SERVER
    assert spans[0].parent is None
    assert metrics.total("http_requests_total") == 1


async def test_fastapi_span_named_by_full_template(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """The FastAPI span is named by the included router's full template, prefix included."""
    app = build_fastapi()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/v2/items/5")
        assert response.status_code == 200
    (span,) = finished_spans(tel)
    assert span.name == "GET /v2/items/{item_id}"
    assert (span.attributes or {})["http.route"] == "/v2/items/{item_id}"


async def test_fastapi_wrapped_app_yields_exactly_one_span(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """Wrapping a FastAPI app (no add_middleware) still exports exactly one span per request."""
    app = TelemetryMiddleware(build_fastapi(), telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/v2/items/8")
    assert response.status_code == 200
    spans = finished_spans(tel)
    assert len(spans) == 1
    assert spans[0].kind is SpanKind.SERVER


async def test_app_spans_join_the_request_trace(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """A span started with the global tracer inside an endpoint is a child of the server span."""

    async def work(request: Request) -> Response:
        with trace.get_tracer("app.code").start_as_current_span("db.query"):
            return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/work", work)])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        await client.get("/work")
    spans = {s.name: s for s in finished_spans(tel)}
    assert set(spans) == {"GET /work", "db.query"}
    server, child = spans["GET /work"], spans["db.query"]
    assert child.context.trace_id == server.context.trace_id
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id


async def test_fastapi_wrapped_from_outside_without_lifespan_is_one_span() -> None:
    """TelemetryMiddleware(FastAPI app) driven without a lifespan still switches FastAPI's own
    spans off: log lines inside the endpoint carry our server span's id."""
    import httpx
    from fastapi import FastAPI

    from telemetry_web.testing import capture_telemetry

    captured = capture_telemetry()
    try:
        app = FastAPI()
        log = captured.telemetry.get_logger("inside")

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            log.info("in endpoint")
            return {"id": item_id}

        wrapped = TelemetryMiddleware(app, telemetry=captured.telemetry)
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/items/3")).status_code == 200
        (span,) = [s for s in captured.spans() if s.name.startswith("GET")]
        (line,) = [e for e in captured.logs() if e["event"] == "in endpoint"]
        assert line["span_id"] == format(span.context.span_id, "016x")
    finally:
        captured.close()


async def test_two_different_traceparent_headers_start_a_new_trace() -> None:
    """Repeated traceparent headers that disagree are ignored (a new root trace, a 200), while
    an identical repeat is still continued."""
    from telemetry_web.testing import capture_telemetry

    first = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    second = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    captured = capture_telemetry()
    try:
        app = build_starlette()
        app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
        conflicting = [(b"traceparent", first), (b"traceparent", second)]
        assert (await call_asgi(app, "/api/users/1", headers=conflicting)).status == 200
        repeated = [(b"traceparent", first), (b"traceparent", first)]
        assert (await call_asgi(app, "/api/users/1", headers=repeated)).status == 200
        root, continued = [s for s in captured.spans() if s.kind is SpanKind.SERVER]
        assert root.parent is None
        assert continued.parent is not None
        assert format(continued.context.trace_id, "032x") == first.decode().split("-")[1]
    finally:
        captured.close()
