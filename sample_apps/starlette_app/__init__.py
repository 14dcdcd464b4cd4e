"""The sample service: ``uvicorn sample_apps.starlette_app:app``.

Configuration comes from the environment (``TELEMETRY_CONFIG``, ``TELEMETRY_*``, ``OTEL_*``);
without any, it logs JSON lines to stdout and answers /metrics, /health and /ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware

telemetry = Telemetry(service="sample-app")
log = telemetry.get_logger("sample_app")
stdlib_log = logging.getLogger("sample_app.stdlib")

USERS = {1: {"id": 1, "name": "Ada"}, 2: {"id": 2, "name": "Grace"}}


async def list_users(request: Request) -> JSONResponse:
    return JSONResponse(list(USERS.values()))


async def get_user(request: Request) -> JSONResponse:
    user = USERS.get(request.path_params["user_id"])
    if user is None:
        raise HTTPException(status_code=404, detail="no such user")
    return JSONResponse(user)


async def fail(request: Request) -> JSONResponse:
    raise RuntimeError("the sample endpoint that always fails")


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"{i}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


# A small SQLite database for the report endpoint (instrumented by `telemetry run`, or by
# SQLAlchemyInstrumentor when the app is set up by hand).
try:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import StaticPool

    db = create_engine("sqlite://", poolclass=StaticPool)
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT, total REAL)"))
        conn.execute(text("INSERT INTO orders (user_id, total) VALUES (1, 9.5), (2, 20), (1, 3)"))
except ImportError:  # the [sqlalchemy] extra is not installed: /api/report answers 503
    db = None


def _redis_or_none() -> object | None:
    """A Redis client when one answers on 127.0.0.1:6379 (the report is cached there)."""
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.2)
        client.ping()
        return client
    except Exception:  # no redis package, or no server: the report is not cached
        return None


cache = _redis_or_none()


async def report(request: Request) -> JSONResponse:
    if db is None:
        return JSONResponse({"error": "install telemetry-web[sqlalchemy]"}, status_code=503)
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT user_id, SUM(total) FROM orders WHERE total > :min GROUP BY user_id"),
            {"min": 1},
        ).all()
    totals = {str(user): total for user, total in rows}
    if cache is not None:
        cache.set("sample-app:report", str(totals), ex=60)  # type: ignore[attr-defined]
    return JSONResponse(totals)


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(0.3)
    return JSONResponse({"slow": True})


async def create_order(request: Request) -> JSONResponse:
    order = await request.json() if await request.body() else {}
    bound = log.bind(user_id=order.get("user_id", 1), items=len(order.get("items", [])))
    bound.info("Processing order")
    stdlib_log.warning("stock is low for %s", "sku-42")
    return JSONResponse({"status": "accepted"}, status_code=201)


app = Starlette(
    routes=[
        Route("/api/users", list_users),
        Route("/api/users/{user_id:int}", get_user),
        Route("/api/fail", fail),
        Route("/api/stream", stream),
        Route("/api/orders", create_order, methods=["POST"]),
        Route("/api/report", report),
        Route("/api/slow", slow),
    ]
)
app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
