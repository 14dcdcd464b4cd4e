"""The three benchmarked apps, plus the counting exporter and sinks that tell what they produced.

Every app serves the same endpoint, ``GET /api/users/{user_id}`` returning a small JSON body.
The ``*_app`` functions are uvicorn factories (``uvicorn benchmarks.apps:bare_app --factory``);
the ``build_*`` functions also return a way to read what the instrumentation produced.
"""

import atexit
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_exporter import PrometheusMiddleware

ROUTE = "/api/users/{user_id}"
BENCH_PATH = "/api/users/42"

# Set by benchmarks.load: where a uvicorn-served app writes what it produced when the process exits.
COUNTS_ENV = "TELEMETRY_WEB_BENCH_COUNTS_FILE"

BARE = "bare"
TELEMETRY_WEB = "telemetry-web"
OTEL_STACK = "otel-stack"


class CountingSpanExporter(SpanExporter):
    """Counts exported spans; root spans (no parent) should be exactly one per request."""

    def __init__(self) -> None:
        self.spans = 0
        self.root_spans = 0
        self._lock = threading.Lock()  # export() runs on the processor's worker thread

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        roots = sum(1 for span in spans if span.parent is None)
        with self._lock:
            self.spans += len(spans)
            self.root_spans += roots
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class CountingLogSink:
    """telemetry-web log sink: renders each event to JSON (the work a real sink does) and counts."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        # The rendering every telemetry-web sink shares (one JSON line per event and batch).
        from telemetry_web.logging._sinks import json_lines

        self.bytes += sum(len(line) for line in json_lines(events))
        self.lines += len(events)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CountingDevNull:
    """A text file on os.devnull that counts the lines written through it."""

    def __init__(self) -> None:
        # Lives as long as the app it logs for; nothing reaches the disk anyway.
        self._file = open(os.devnull, "w")  # noqa: SIM115
        self.lines = 0

    def write(self, text: str) -> int:
        # print() writes the message and the newline separately: count newlines, not calls.
        self.lines += text.count("\n")
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()


@dataclass(frozen=True)
class Produced:
    """What one app's instrumentation produced over the whole run (warm-up included)."""

    spans: int
    root_spans: int
    log_lines: int
    counter_increments: float


@dataclass
class Variant:
    """An app to benchmark; ``collect`` flushes its pipelines and reads what they produced;
    ``drain`` (if any) waits until its background threads have handled every request so far,
    so that their CPU time is billed to the batch that caused it."""

    name: str
    app: ASGIApp
    collect: Callable[[], Produced] | None
    drain: Callable[[], object] | None = None


async def get_user(request: Request) -> JSONResponse:
    user_id = int(request.path_params["user_id"])
    return JSONResponse({"id": user_id, "name": "Ada Lovelace", "active": True})


def _starlette(middleware: Sequence[Middleware] = ()) -> Starlette:
    return Starlette(routes=[Route(ROUTE, get_user, methods=["GET"])], middleware=middleware)


# FastAPI's own OpenTelemetry instrumentation, off in every FastAPI variant: the bare app must be
# bare (in this process it would record into whatever global provider another variant set), the
# usual stack brings its middleware, and telemetry-web switches it off itself.
FASTAPI_TELEMETRY_OFF = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def _fastapi(middleware: Sequence[Middleware] = ()) -> Starlette:
    from fastapi import FastAPI

    app = FastAPI(
        middleware=list(middleware),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY_OFF,  # type: ignore[arg-type]
    )

    @app.get(ROUTE)
    async def get_user_fastapi(user_id: int) -> dict[str, Any]:
        return {"id": user_id, "name": "Ada Lovelace", "active": True}

    return app


# The ASGI frameworks benchmarked: each app is built the same way around the same endpoint.
APPS: dict[str, Callable[[Sequence[Middleware]], Starlette]] = {
    "starlette": _starlette,
    "fastapi": _fastapi,
}
# Traces started at this ratio: the sampled-out row (every other part of the pipeline on).
SAMPLED_OUT_RATIO = 0.01
TELEMETRY_WEB_SAMPLED_OUT = "telemetry-web 1%"


def sum_samples(registry: CollectorRegistry, sample: str, **labels: str) -> float:
    """Sum one sample name over every label set matching ``labels``."""
    total = 0.0
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def build_bare(framework: str = "starlette") -> Variant:
    return Variant(BARE, APPS[framework](()), None)


def build_telemetry_web(framework: str = "starlette", ratio: float | None = None) -> Variant:
    # Imported here so the other variants still run while the package is broken or absent.
    from telemetry_web import Telemetry, TelemetryMiddleware

    exporter = CountingSpanExporter()
    sink = CountingLogSink()
    tel = Telemetry(**telemetry_options(exporter, sink, ratio))
    app = APPS[framework](())
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    name = TELEMETRY_WEB if ratio is None else TELEMETRY_WEB_SAMPLED_OUT
    return Variant(name, app, lambda: telemetry_produced(tel, exporter, sink), tel.flush)


def telemetry_options(
    exporter: CountingSpanExporter, sink: CountingLogSink, ratio: float | None = None
) -> dict[str, Any]:
    """Keyword arguments of every benchmarked telemetry-web ``Telemetry`` (ASGI, Flask, Django);
    ``ratio``: new traces sampled at that ratio instead of all of them."""
    # No local store: spans and log lines go to the counting exporter and sink only (the
    # usual stack keeps no local copy either), and no run writes into the repository's one.
    config: dict[str, Any] = {"logging": {"sinks": {"console": False}}, "store": {"enabled": False}}
    if ratio is not None:
        config["tracing"] = {"sampling": {"ratio": {"rate": ratio}}}
    return {
        "service": "bench",
        "environment": "bench",
        # Only our counting sink: `sinks: {}` would keep the default console sink (stdout).
        "config": config,
        "span_exporters": [exporter],
        "log_sinks": [sink],
        # Deterministic and isolated: no TELEMETRY_*/OTEL_* overrides from the caller's shell, and
        # no root-logger handler that would count other variants' warnings as our log lines.
        "use_env": False,
        "capture_stdlib_logging": False,
    }


def telemetry_produced(tel: Any, exporter: CountingSpanExporter, sink: CountingLogSink) -> Produced:
    """Shut a telemetry-web ``Telemetry`` down (flushing it) and read what it produced."""
    tel.shutdown()
    requests = sum_samples(tel.registry, "http_requests_total")
    return Produced(exporter.spans, exporter.root_spans, sink.lines, requests)


class RequestLogMiddleware:
    """Pure-ASGI middleware writing one structlog line per request, correlated with the span."""

    def __init__(self, app: ASGIApp, logger: Any) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # Still inside OpenTelemetryMiddleware: the current span is the request's server span.
            ctx = trace.get_current_span().get_span_context()
            self.logger.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
                trace_id=format(ctx.trace_id, "032x"),
                span_id=format(ctx.span_id, "016x"),
            )


def private_structlog(out: CountingDevNull) -> Any:
    # structlog.configure() is global and telemetry-web uses structlog too: build a private logger
    # that sets every knob itself, so neither can change the other's pipeline.
    return structlog.wrap_logger(
        structlog.PrintLogger(file=out),  # type: ignore[arg-type]  # duck-typed text file
        processors=[
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        context_class=dict,
        cache_logger_on_first_use=True,
    )


_otel_builds = itertools.count()


def build_otel_stack(framework: str = "starlette") -> Variant:
    exporter = CountingSpanExporter()
    provider = TracerProvider()
    # A queue that holds a whole in-process round: with the SDK's default (2048) the loop
    # outruns the export thread and spans are dropped, i.e. work the row would not pay for.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=16_384))
    out = CountingDevNull()
    # starlette-exporter keeps its metrics on the process-global REGISTRY (no registry argument):
    # a unique app_name label keeps each build's counts apart.
    app_name = f"bench-otel-{next(_otel_builds)}"
    app = APPS[framework](
        [
            # Metrics come from starlette-exporter; an explicit no-op meter provider keeps any
            # global one (telemetry-web may install one) from being measured here.
            Middleware(
                OpenTelemetryMiddleware,
                tracer_provider=provider,
                meter_provider=NoOpMeterProvider(),
            ),
            Middleware(PrometheusMiddleware, app_name=app_name, group_paths=True),
            Middleware(RequestLogMiddleware, logger=private_structlog(out)),
        ]
    )

    def collect() -> Produced:
        provider.force_flush()
        provider.shutdown()
        requests = sum_samples(REGISTRY, "starlette_requests_total", app_name=app_name)
        return Produced(exporter.spans, exporter.root_spans, out.lines, requests)

    return Variant(OTEL_STACK, app, collect, provider.force_flush)


BUILDERS: dict[str, Callable[[], Variant]] = {
    BARE: build_bare,
    TELEMETRY_WEB: build_telemetry_web,
    OTEL_STACK: build_otel_stack,
}


def builders(framework: str) -> dict[str, Callable[[], Variant]]:
    """The in-process variants of one ASGI framework, the sampled-out row included."""
    return {
        BARE: lambda: build_bare(framework),
        TELEMETRY_WEB: lambda: build_telemetry_web(framework),
        TELEMETRY_WEB_SAMPLED_OUT: lambda: build_telemetry_web(framework, SAMPLED_OUT_RATIO),
        OTEL_STACK: lambda: build_otel_stack(framework),
    }


class CountingASGI:
    """Outermost wrapper counting HTTP requests, the denominator of per-request counts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


def _served(variant: Variant) -> ASGIApp:
    """The app uvicorn serves; with COUNTS_ENV set, it reports its counts at process exit."""
    path = os.environ.get(COUNTS_ENV)
    if not path:
        return variant.app
    counted = CountingASGI(variant.app)  # every variant, bare included, pays for this wrapper
    collect = variant.collect

    def write_counts() -> None:
        # atexit hooks run last-registered first: this flushes before the SDK's own exit hooks.
        produced = asdict(collect()) if collect is not None else None
        # One file per worker process (several workers add up).
        out = Path(f"{path}.{os.getpid()}")
        out.write_text(json.dumps({"requests": counted.requests, "produced": produced}))

    atexit.register(write_counts)
    return counted


# uvicorn --factory entry points: benchmarks.apps:bare_app etc.
def bare_app() -> ASGIApp:
    return _served(build_bare())


def telemetry_web_app() -> ASGIApp:
    return _served(build_telemetry_web())


def otel_stack_app() -> ASGIApp:
    return _served(build_otel_stack())


def fastapi_bare_app() -> ASGIApp:
    return _served(build_bare("fastapi"))


def fastapi_telemetry_web_app() -> ASGIApp:
    return _served(build_telemetry_web("fastapi"))


def fastapi_otel_stack_app() -> ASGIApp:
    return _served(build_otel_stack("fastapi"))


FACTORIES: dict[str, str] = {
    BARE: "benchmarks.apps:bare_app",
    TELEMETRY_WEB: "benchmarks.apps:telemetry_web_app",
    OTEL_STACK: "benchmarks.apps:otel_stack_app",
}
FASTAPI_FACTORIES: dict[str, str] = {
    BARE: "benchmarks.apps:fastapi_bare_app",
    TELEMETRY_WEB: "benchmarks.apps:fastapi_telemetry_web_app",
    OTEL_STACK: "benchmarks.apps:fastapi_otel_stack_app",
}
