"""What the Flask and Django benchmarks share: the variant, the usual stack's pieces, gunicorn glue.

Every WSGI app serves ``GET /api/users/<int:user_id>`` (``BENCH_PATH`` is what is requested).
The variant names are the ASGI ones: ``bare``, ``telemetry-web``, ``otel-stack``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks.apps import COUNTS_ENV, CountingSpanExporter, Produced

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

USER = {"name": "Ada Lovelace", "active": True}  # the body is {"id": user_id, **USER}


@dataclass
class WSGIVariant:
    """A WSGI app to benchmark; ``collect`` flushes its pipelines and reads what they produced."""

    name: str
    app: WSGIApplication
    collect: Callable[[], Produced] | None
    drain: Callable[[], object] | None = None  # see benchmarks.apps.Variant


def counting_tracer_provider() -> tuple[TracerProvider, CountingSpanExporter]:
    """A private SDK provider (never the global one), batching into a counting exporter."""
    exporter = CountingSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def flush_tracer_provider(provider: TracerProvider) -> None:
    provider.force_flush()
    provider.shutdown()


def request_line(logger: Any, method: str, path: str, status: int, start: float) -> None:
    """The usual stack's structlog request line, correlated with the current (server) span."""
    ctx = trace.get_current_span().get_span_context()
    logger.info(
        "request",
        method=method,
        path=path,
        status=status,
        duration_ms=round((time.perf_counter() - start) * 1000, 3),
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
    )


class CountingWSGI:
    """Outermost wrapper counting requests, the denominator of per-request counts (thread-safe,
    should a threaded gunicorn worker call it)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.requests += 1
        return self.app(environ, start_response)


def served(variant: WSGIVariant) -> WSGIApplication:
    """The app gunicorn serves; with COUNTS_ENV set, it reports its counts when the worker exits.

    Gunicorn's worker leaves through ``sys.exit`` after a graceful stop (SIGTERM), so ``atexit``
    hooks run in the worker, where the app was built (no ``--preload``).
    """
    path = os.environ.get(COUNTS_ENV)
    if not path:
        return variant.app
    counted = CountingWSGI(variant.app)  # every variant, bare included, pays for this wrapper
    collect = variant.collect

    def write_counts() -> None:
        produced = asdict(collect()) if collect is not None else None
        # One file per worker process (several workers add up).
        out = Path(f"{path}.{os.getpid()}")
        out.write_text(json.dumps({"requests": counted.requests, "produced": produced}))

    atexit.register(write_counts)
    return counted
