"""The Flask variants: bare, telemetry-web (its Flask extension) and the usual stack.

The usual stack: OpenTelemetry's ``FlaskInstrumentor`` (a private SDK provider, batching into a
counting exporter) + prometheus-flask-exporter (a fresh registry, grouped by URL rule) + a
structlog request line written by an ``after_request`` hook.

The ``*_app`` functions are gunicorn entry points (``gunicorn 'benchmarks.flask_apps:bare_app()'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from opentelemetry.metrics import NoOpMeterProvider
from prometheus_client import CollectorRegistry

from benchmarks.apps import (
    BARE,
    OTEL_STACK,
    TELEMETRY_WEB,
    CountingDevNull,
    CountingLogSink,
    CountingSpanExporter,
    Produced,
    private_structlog,
    sum_samples,
    telemetry_options,
    telemetry_produced,
)
from benchmarks.wsgi_common import (
    USER,
    WSGIVariant,
    counting_tracer_provider,
    flush_tracer_provider,
    request_line,
    served,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ROUTE = "/api/users/<int:user_id>"
USUAL_STACK = "FlaskInstrumentor + prometheus-flask-exporter + structlog line"


def _flask() -> Flask:
    app = Flask("bench_flask")

    @app.get(ROUTE)
    def get_user(user_id: int) -> dict[str, Any]:
        return {"id": user_id, **USER}

    return app


def build_bare() -> WSGIVariant:
    return WSGIVariant(BARE, _flask(), None)


def build_telemetry_web() -> WSGIVariant:
    # Imported here so the other variants still run while the package is broken or absent.
    from telemetry_web.flask import FlaskTelemetry

    exporter = CountingSpanExporter()
    sink = CountingLogSink()
    app = _flask()
    tel = FlaskTelemetry(app, **telemetry_options(exporter, sink)).telemetry
    # The app itself, as a server calls it: Flask.__call__ runs app.wsgi_app, which is now
    # telemetry-web's middleware around Flask's.
    return WSGIVariant(
        TELEMETRY_WEB, app, lambda: telemetry_produced(tel, exporter, sink), tel.flush
    )


def _log_requests(app: Flask, logger: Any) -> None:
    """One structlog line per request from ``after_request``, where OpenTelemetry's span is
    still current (it is ended and detached in ``teardown_request``)."""

    @app.before_request
    def start_timer() -> None:
        g.bench_start = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        start = g.get("bench_start", time.perf_counter())
        request_line(logger, request.method, request.path, response.status_code, start)
        return response


def build_otel_stack() -> WSGIVariant:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from prometheus_flask_exporter import PrometheusMetrics  # type: ignore[import-untyped]

    provider, exporter = counting_tracer_provider()
    out = CountingDevNull()
    registry = CollectorRegistry(auto_describe=True)
    app = _flask()
    # Metrics come from prometheus-flask-exporter; a no-op meter provider keeps OpenTelemetry's
    # own HTTP metrics (and any global provider) out of the measurement, as for the ASGI row.
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=provider, meter_provider=NoOpMeterProvider()
    )
    # url_rule: the label is the rule template, /api/users/<int:user_id>, not each path.
    PrometheusMetrics(app, registry=registry, group_by="url_rule")
    _log_requests(app, private_structlog(out))

    def collect() -> Produced:
        flush_tracer_provider(provider)
        requests = sum_samples(registry, "flask_http_request_total")
        return Produced(exporter.spans, exporter.root_spans, out.lines, requests)

    # FlaskInstrumentor wrapped app.wsgi_app, which Flask.__call__ runs.
    return WSGIVariant(OTEL_STACK, app, collect, provider.force_flush)


BUILDERS: dict[str, Callable[[], WSGIVariant]] = {
    BARE: build_bare,
    TELEMETRY_WEB: build_telemetry_web,
    OTEL_STACK: build_otel_stack,
}


# gunicorn entry points: 'benchmarks.flask_apps:bare_app()' etc.
def bare_app() -> WSGIApplication:
    return served(build_bare())


def telemetry_web_app() -> WSGIApplication:
    return served(build_telemetry_web())


def otel_stack_app() -> WSGIApplication:
    return served(build_otel_stack())


TARGETS: dict[str, str] = {
    BARE: "benchmarks.flask_apps:bare_app()",
    TELEMETRY_WEB: "benchmarks.flask_apps:telemetry_web_app()",
    OTEL_STACK: "benchmarks.flask_apps:otel_stack_app()",
}
