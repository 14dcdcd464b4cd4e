"""The UI's ASGI app: the static page and the JSON and server-sent-event endpoints it calls.

Every read goes through the store's reader API (``TracingManager``, ``MetricHistory``: read-only
connections, parameterised and bounded queries, keyset pages); a connection is opened per request
(sqlite3 connections belong to one thread and Starlette runs the synchronous endpoints on its
thread pool, off the event loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import semconv as sc
from ..config import parse_duration
from ..store import (
    LogQuery,
    LogRecord,
    MetricHistory,
    StoreError,
    TraceQuery,
    TracingManager,
)
from ._trace import trace_rows

__all__ = ["COOKIE", "create_app"]

STATIC = Path(__file__).parent / "static"
COOKIE = "telemetry_ui_token"
TAIL_BACKLOG = 50  # lines sent when a tail starts
TAIL_SCAN = 2000  # lines read per poll (the text filter is applied to them)
TAIL_POLL = 0.5  # seconds between two reads of new lines
KEEPALIVE = 15.0  # seconds between two SSE comments on a quiet tail
MAX_WINDOW = 30 * 86400.0
MAX_LIMIT = 200  # traces per page
MAX_SCAN = 200_000  # span rows a search page reads at most (text: store/_search.TEXT_SCAN lines)
_DURATIONS = (
    (sc.HTTP_REQUEST_DURATION, sc.LABEL_ROUTE),
    (sc.OTEL_HTTP_SERVER_DURATION, sc.OTEL_LABEL_ROUTE),
)


class BadRequest(Exception):
    """A query parameter that cannot be used; answered with 400 and the message."""


class TokenGuard:
    """Refuses every request without the token: ``Authorization: Bearer <token>``, the cookie
    set when the page was opened with ``?token=<token>``, or that ``?token=`` itself."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth[:7].lower() == "bearer " else None
        if self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        if self._ok(request.query_params.get("token")):
            # The token leaves the address bar (and the history) for an HttpOnly cookie.
            rest = urlencode(
                [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            )
            response: Response = RedirectResponse(
                request.url.path + (f"?{rest}" if rest else ""), status_code=303
            )
            response.set_cookie(COOKIE, self.token.decode(), httponly=True, samesite="strict")
        else:
            response = PlainTextResponse(
                "401 Unauthorized: this telemetry UI needs its token (open it once with "
                "?token=<token>, or send Authorization: Bearer <token>)\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        await response(scope, receive, send)


# --- parameters -------------------------------------------------------------------------------


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _number(request: Request, name: str) -> float | None:
    value = _text(request, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise BadRequest(f"{name}={value!r} is not a non-negative number")
    return number


def _window(request: Request, default: str = "1h") -> float:
    value = _text(request, "window") or default
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise BadRequest(f"window={value!r} is not a duration such as 15m, 1h or 7d") from None
    if not 0 < seconds <= MAX_WINDOW:
        raise BadRequest(f"window={value!r} must be above 0 and at most 30d")
    return seconds


def _cursor(value: str | None) -> str | None:
    if value is None:
        return None
    start, _, row = value.partition(".")
    if not (start.isdigit() and row.isdigit()):
        raise BadRequest(f"before={value!r} is not a cursor from a previous page")
    return value


def _search(request: Request) -> TraceQuery:
    status = _text(request, "status")
    if status not in (None, "error", "ok", "2xx", "3xx", "4xx", "5xx"):
        raise BadRequest(f"status={status!r} is not one of error, ok, 2xx, 3xx, 4xx, 5xx")
    since = _text(request, "since")
    start = _number(request, "start")
    if since is not None:
        try:
            start = time.time() - parse_duration(since)
        except ValueError:
            raise BadRequest(f"since={since!r} is not a duration such as 15m or 1h") from None
    min_ms = _number(request, "min_ms")
    trace_id = _text(request, "trace_id")
    if trace_id is not None and not all(c in "0123456789abcdefABCDEF" for c in trace_id):
        raise BadRequest(f"trace_id={trace_id!r} is not a hexadecimal trace id or prefix")
    return TraceQuery(
        service=_text(request, "service"),
        route=_text(request, "route"),
        status=status,
        min_duration=None if min_ms is None else min_ms / 1000,
        start=start,
        end=_number(request, "end"),
        trace_id=trace_id,
        text=_text(request, "text"),
        limit=max(1, min(int(_number(request, "limit") or 50), MAX_LIMIT)),
        cursor=_cursor(_text(request, "before")),
        max_scan=MAX_SCAN,
    )


# --- endpoints (synchronous: run on the thread pool) ------------------------------------------


class UI:
    def __init__(self, store_path: str) -> None:
        self.store_path = store_path

    def _manager(self) -> TracingManager:
        return TracingManager(self.store_path)

    def traces(self, request: Request) -> dict[str, Any]:
        query = _search(request)
        with self._manager() as store:
            page = store.trace_page(query)
        return {"traces": [t.to_json() for t in page.traces], "next": page.next_cursor}

    def trace(self, request: Request) -> dict[str, Any]:
        trace_id = request.path_params["trace_id"]
        with self._manager() as store:
            spans = store.get_trace(trace_id)
            if not spans:
                raise LookupError(f"no trace {trace_id} in the store")
            logs = store.logs(LogQuery(trace_id=spans[0].trace_id, limit=1000))
        return trace_rows(spans, logs)

    def services(self, request: Request) -> dict[str, Any]:
        with self._manager() as store:
            names = store.route_names(since=_window(request, "1d"))
        return {
            "services": sorted({service for service, _ in names}),
            "routes": sorted({route for _, route in names}),
        }

    def routes(self, request: Request) -> dict[str, Any]:
        window = _window(request)
        now = time.time()
        from_history = self._routes_from_history(window, now)
        if from_history is not None:
            return {"source": "metrics", "window": window, "routes": from_history}
        with self._manager() as store:
            stats = store.route_stats(since=window)
        return {
            "source": "spans",
            "window": window,
            "routes": [
                {
                    "service": s.service,
                    "route": s.route,
                    "rate": s.count / window,
                    "error_ratio": s.error_rate,
                    "p50": s.p50,
                    "p95": s.p95,
                    "p99": s.p99,
                }
                for s in sorted(stats, key=lambda s: (s.service, s.route))
            ],
        }

    def _history(self) -> MetricHistory | None:
        try:
            return MetricHistory(self.store_path)
        except StoreError:
            return None

    def _routes_from_history(self, window: float, now: float) -> list[dict[str, Any]] | None:
        history = self._history()
        if history is None:
            return None
        with history:
            for family, route_label in _DURATIONS:
                if history.family_type(family) != "histogram":
                    continue
                by = (sc.LABEL_SERVICE, route_label)
                _, _, rows = history.query(family, by=by, since=window, step=window, now=now)
                return [
                    {
                        "service": r.labels.get(sc.LABEL_SERVICE, ""),
                        "route": r.labels.get(route_label, ""),
                        "rate": r.rate or 0.0,
                        "error_ratio": r.error_ratio or 0.0,
                        "p50": r.quantiles.get("p50"),
                        "p95": r.quantiles.get("p95"),
                        "p99": r.quantiles.get("p99"),
                    }
                    for r in rows
                    if r.rate
                ]
        return None

    def route(self, request: Request) -> dict[str, Any]:
        service, route = _text(request, "service"), _text(request, "route")
        if service is None or route is None:
            raise BadRequest("service and route are required")
        window = _window(request)
        now = time.time()
        step = max(1.0, float(math.ceil(window / 30)))
        points, source = self._series_from_history(service, route, window, now)
        failing = TraceQuery(
            service=service, route=route, status="error", start=now - window, max_scan=MAX_SCAN
        )
        with self._manager() as store:
            if points is None:
                source = "spans"
                series = store.route_series(service, route, now - window, now, step)
                points = [p.to_json() for p in series]
            return {
                "service": service,
                "route": route,
                "window": window,
                "source": source,
                "points": points,
                "slowest": [
                    t.to_json() for t in store.slowest_traces(service, route, now - window)
                ],
                "failing": [t.to_json() for t in store.trace_page(failing).traces],
            }

    def _series_from_history(
        self, service: str, route: str, window: float, now: float
    ) -> tuple[list[dict[str, Any]] | None, str]:
        history = self._history()
        if history is None:
            return None, "spans"
        with history:
            for family, route_label in _DURATIONS:
                if history.family_type(family) != "histogram":
                    continue
                where = {sc.LABEL_SERVICE: service, route_label: route}
                _, _, rows = history.query(family, since=window, where=where, now=now)
                points = [
                    {"start": r.start, "end": r.end, "rate": r.rate or 0.0,
                     "error_ratio": r.error_ratio or 0.0, **r.quantiles}
                    for r in rows
                    if r.rate
                ]  # fmt: skip
                return (points, "metrics") if points else (None, "spans")
        return None, "spans"

    def health(self, request: Request) -> dict[str, Any]:
        window = _window(request)
        history = self._history()
        if history is None:
            return {"checks": [], "note": "the store has no metric history yet"}
        with history:
            if history.family_type(sc.HEALTH_CHECK_STATUS) is None:
                return {"checks": [], "note": "no health check has reported to the store"}
            _, _, rows = history.query(
                sc.HEALTH_CHECK_STATUS, by=(sc.LABEL_CHECK,), since=window, now=time.time()
            )
        checks: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            checks.setdefault(row.labels[sc.LABEL_CHECK], []).append(
                {"start": row.start, "end": row.end, "healthy": row.value == 1}
            )
        return {
            "checks": [
                {
                    "check": name,
                    "healthy": points[-1]["healthy"],
                    "at": points[-1]["end"],
                    "history": points,
                }
                for name, points in sorted(checks.items())
            ]
        }


def _log_json(entry: LogRecord) -> dict[str, Any]:
    return {
        "id": entry.id,
        "timestamp": entry.timestamp,
        "level": entry.level,
        "logger": entry.logger,
        "service": entry.service,
        "event": entry.event,
        "trace_id": entry.trace_id,
        "fields": entry.fields,
    }


def _matches(entry: LogRecord, text: str | None) -> bool:
    if text is None:
        return True
    haystack = f"{entry.event} {json.dumps(entry.fields, default=str)}".lower()
    return text.lower() in haystack


def _endpoint(method: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            body = await run_in_threadpool(method, request)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except LookupError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return endpoint


def _tail(ui: UI) -> Any:
    async def tail(request: Request) -> Response:
        level = _text(request, "level")
        if level not in (None, "debug", "info", "warning", "error", "critical"):
            return JSONResponse({"error": f"level={level!r} is not a log level"}, status_code=400)
        text = _text(request, "text")
        query = LogQuery(level=level, service=_text(request, "service"), limit=TAIL_SCAN)

        def backlog() -> tuple[int, list[LogRecord]]:
            with ui._manager() as store:
                last = store.last_log_id()
                found = store.logs(dataclasses.replace(query, until_id=last))
            return last, [e for e in found if _matches(e, text)][-TAIL_BACKLOG:]

        def newer(after: int) -> list[LogRecord]:
            with ui._manager() as store:
                found = store.logs_written_after(dataclasses.replace(query, after_id=after))
            return found

        async def events() -> AsyncIterator[str]:
            try:
                last, lines = await run_in_threadpool(backlog)
            except StoreError as exc:
                yield f"event: failure\ndata: {json.dumps(str(exc))}\n\n"
                return
            yield "retry: 2000\n\n"
            for entry in lines:
                yield f"data: {json.dumps(_log_json(entry), default=str)}\n\n"
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                await asyncio.sleep(TAIL_POLL)
                try:
                    batch = await run_in_threadpool(newer, last)
                except StoreError:
                    continue  # the file is being replaced or is busy: try again
                if batch:
                    last = batch[-1].id
                for entry in sorted(batch, key=lambda e: (e.timestamp, e.id)):
                    if _matches(entry, text):
                        quiet_since = time.monotonic()
                        yield f"data: {json.dumps(_log_json(entry), default=str)}\n\n"
                if time.monotonic() - quiet_since > KEEPALIVE:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return tail


def create_app(store_path: str, *, token: str | None = None) -> ASGIApp:
    """The UI over the store at ``store_path``; with ``token``, every request must carry it."""
    ui = UI(store_path)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/traces", _endpoint(ui.traces)),
            Route("/api/traces/{trace_id:str}", _endpoint(ui.trace)),
            Route("/api/services", _endpoint(ui.services)),
            Route("/api/routes", _endpoint(ui.routes)),
            Route("/api/route", _endpoint(ui.route)),
            Route("/api/health", _endpoint(ui.health)),
            Route("/api/logs/stream", _tail(ui)),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )
    return app if token is None else TokenGuard(app, token)
