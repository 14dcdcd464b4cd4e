"""``python -m benchmarks.routes``: does a request's route label cost more as the app grows?

Starlette and FastAPI apps with N = 10, 100 and 1,000 routes (``/api/v1/r<i>/items/{item_id}``;
FastAPI's through an included ``APIRouter``) are called in-process, bare and with
``TelemetryMiddleware``, rounds alternating between the two on the same paths. Three traffic
shapes:

- same path: one route, one id (the label cache's best case);
- distinct ids: every request a new id, cycling over all N routes (nothing repeats);
- unmatched: random paths that match no route (what scanners send; 404s).

Each row is the median over rounds of (telemetry - bare) µs per request, and the flatness ratio
overhead(N=1000) / overhead(N=10) against the target: within 10% (ratio <= 1.10). Time is the
calling thread's CPU time (``time.thread_time``): the request path's own cost, unaffected by
other processes on a shared machine (the exporter and log threads run elsewhere, as ever).

    .venv/bin/python -m benchmarks.routes [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.apps import (
    FASTAPI_TELEMETRY_OFF,
    CountingLogSink,
    CountingSpanExporter,
    telemetry_options,
)

SIZES = (10, 100, 1000)
SHAPES = ("same path", "distinct ids", "unmatched")
TARGET = 1.10  # overhead at N=1000 within 10% of the overhead at N=10
CHUNK = 25  # requests per app before switching to the other one


def _template(i: int) -> str:
    return f"/api/v1/r{i}/items/{{item_id}}"


def starlette_app(n: int) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["item_id"])

    return Starlette(routes=[Route(_template(i), item, methods=["GET"]) for i in range(n)])


def fastapi_app(n: int) -> Any:
    from fastapi import APIRouter, FastAPI

    router = APIRouter(prefix="/api/v1")

    async def item(item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    for i in range(n):
        router.add_api_route(f"/r{i}/items/{{item_id}}", item, methods=["GET"])
    # Its own telemetry off in both variants, as in the main benchmark: left on, it made the
    # bare app slower than the instrumented one (telemetry-web switches it off).
    app = FastAPI(
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY_OFF,  # type: ignore[arg-type]
    )
    app.include_router(router)
    return app


FRAMEWORKS: dict[str, Callable[[int], Any]] = {"Starlette": starlette_app, "FastAPI": fastapi_app}


def paths(shape: str, n: int, count: int, rng: random.Random, serial: list[int]) -> list[str]:
    """``count`` request paths of one traffic shape (ids never repeat across calls)."""
    if shape == "same path":
        return [f"/api/v1/r{n // 2}/items/42"] * count
    if shape == "distinct ids":
        start = serial[0]
        serial[0] += count
        return [f"/api/v1/r{k % n}/items/{k}" for k in range(start, start + count)]
    return [
        f"/{rng.getrandbits(40):x}/{rng.getrandbits(24):x}"
        if k % 2
        else f"/api/v1/{rng.getrandbits(40):x}"
        for k in range(count)
    ]


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"b")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Send:
    def __init__(self) -> None:
        self.statuses: set[int] = set()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.statuses.add(message["status"])


async def _batch(app: Any, batch: list[str], send: _Send) -> float:
    """CPU µs per request of this thread over ``batch``."""
    started = time.thread_time()
    for path in batch:
        await app(_scope(path), _receive, send)
    return (time.thread_time() - started) / len(batch) * 1e6


async def overhead(
    build: Callable[[int], Any], n: int, shape: str, rounds: int, per_round: int
) -> float:
    """Median over chunks of (telemetry - bare) µs per request, the two apps alternating every
    ``CHUNK`` requests on the same paths so that drift on a shared machine hits both."""
    from telemetry_web import Telemetry, TelemetryMiddleware

    bare = build(n)
    instrumented = build(n)
    options = telemetry_options(CountingSpanExporter(), CountingLogSink())
    options["config"]["store"] = {"enabled": "false"}  # no SQLite writes in a timing loop
    telemetry = Telemetry(**options)
    instrumented.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    rng, serial = random.Random(n), [0]
    expected = {404} if shape == "unmatched" else {200}
    # Warm-up: distinct ids visit every route once first, so the timed rounds measure the steady
    # state, not the one-time creation of each route's metric series.
    warm_up = per_round // 2 + (n if shape == "distinct ids" else 0)
    try:
        for app in (bare, instrumented):
            send = _Send()
            await _batch(app, paths(shape, n, warm_up, rng, serial), send)
            if send.statuses != expected:
                raise RuntimeError(f"{shape} answered {sorted(send.statuses)}")
        # The apps' routes stay out of the collector's way: a full collection would otherwise
        # walk N routes and bill the variant that allocates more for the app's size.
        gc.collect()
        gc.freeze()
        differences = []
        for r in range(rounds * per_round // CHUNK):
            chunk = paths(shape, n, CHUNK, rng, serial)
            order = (bare, instrumented) if r % 2 == 0 else (instrumented, bare)
            timed = {id(app): await _batch(app, chunk, _Send()) for app in order}
            differences.append(timed[id(instrumented)] - timed[id(bare)])
        return statistics.median(differences)
    finally:
        gc.unfreeze()
        telemetry.shutdown()


def label_cost(build: Callable[[int], Any], n: int, shape: str, count: int) -> float:
    """µs (thread CPU) of the route label alone: the app's label source before the app runs."""
    from telemetry_web._http.routes import resolver_for

    source = resolver_for(build(n))
    if source is None:
        raise RuntimeError("no route source for the benchmark app")
    rng, serial = random.Random(n), [0]
    for path in paths(shape, n, count // 4 + (n if shape == "distinct ids" else 0), rng, serial):
        source.before(_scope(path))
    scopes = [_scope(path) for path in paths(shape, n, count, rng, serial)]
    # As in overhead(): earlier apps' garbage is collected, and the live heap (this app's routes,
    # the scopes) is frozen, so that no full collection lands in the timed loop.
    gc.collect()
    gc.freeze()
    try:
        started = time.thread_time()
        for scope in scopes:
            source.before(scope)
        return (time.thread_time() - started) / count * 1e6
    finally:
        gc.unfreeze()


def _table(title: str, rows: dict[tuple[str, str], list[float]]) -> int:
    """Print one table; the number of rows within the target."""
    print(title)
    sizes = "".join(f"{f'N={n}':>9}" for n in SIZES)
    print(f"{'framework':10} {'traffic':13}{sizes} {'ratio':>7}  target")
    within_target = 0
    for (framework, shape), values in rows.items():
        ratio = values[-1] / values[0] if values[0] > 0 else float("inf")
        within = ratio <= TARGET
        within_target += within
        cells = "".join(f"{v:9.1f}" for v in values)
        print(f"{framework:10} {shape:13}{cells} {ratio:7.2f}  {'ok' if within else 'MISSED'}")
    return within_target


async def measure(rounds: int, per_round: int) -> dict[tuple[str, str], list[float]]:
    rows: dict[tuple[str, str], list[float]] = {}
    for framework, build in FRAMEWORKS.items():
        for shape in SHAPES:
            for n in SIZES:
                print(f"bench: routes {framework} {shape} N={n}", file=sys.stderr)
                value = await overhead(build, n, shape, rounds, per_round)
                rows.setdefault((framework, shape), []).append(value)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    args = parser.parse_args(argv)
    rounds, per_round = (5, 200) if args.quick else (11, 600)
    rows = asyncio.run(measure(rounds, per_round))
    labels = {
        (framework, shape): [label_cost(build, n, shape, per_round * 4) for n in SIZES]
        for framework, build in FRAMEWORKS.items()
        for shape in SHAPES
    }
    overhead_ok = _table(
        f"routes: overhead (telemetry - bare) µs/request, median over chunks of {CHUNK} of "
        f"{rounds} x {per_round} requests, in-process (ASGI), thread CPU time; "
        f"target N=1000/N=10 <= {TARGET:.2f}",
        rows,
    )
    labels_ok = _table("routes: the route label alone, µs/request (thread CPU time)", labels)
    print(
        f"routes: {overhead_ok}/{len(rows)} overhead rows and {labels_ok}/{len(labels)} "
        "label rows within the flatness target"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
