"""The Django variants: bare (no middleware), telemetry-web (its middleware) and the usual stack.

The usual stack: OpenTelemetry's ``DjangoInstrumentor`` (a private SDK provider, batching into a
counting exporter) + django-prometheus (its app and before/after middlewares) + a structlog
request-line middleware.

Django is configured once per process, and ``DjangoInstrumentor().instrument()`` inserts its
middleware into ``settings.MIDDLEWARE`` for the whole process: each builder configures Django
and may run once per process. The benchmark runs every Django variant in a process of its own
(``benchmarks.wsgi_inprocess`` workers, gunicorn servers).

This module is also the URLconf (``ROOT_URLCONF``). The ``*_app`` functions are gunicorn entry
points (``gunicorn 'benchmarks.django_apps:bare_app()'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from opentelemetry.metrics import NoOpMeterProvider

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

USUAL_STACK = "DjangoInstrumentor + django-prometheus + structlog middleware"


def get_user(request: HttpRequest, user_id: int) -> JsonResponse:
    return JsonResponse({"id": user_id, **USER})


urlpatterns = [path("api/users/<int:user_id>", get_user, name="get_user")]


# The usual stack's structlog logger; set by build_otel_stack before Django builds middleware.
_request_logger: Any = None


class RequestLogMiddleware:
    """One structlog line per request; runs inside OpenTelemetry's middleware (the first one),
    so the request's span is current."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.logger = _request_logger

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        request_line(self.logger, request.method or "", request.path, response.status_code, start)
        return response


def _configure(installed_apps: list[str], middleware: list[str]) -> None:
    """A minimal project: no database, no templates, DEBUG off (like sample_apps.django_project)."""
    from django.conf import settings

    settings.configure(
        SECRET_KEY="bench-django-not-a-secret",
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=installed_apps,
        MIDDLEWARE=middleware,
        ROOT_URLCONF=__name__,
        DATABASES={},
        USE_TZ=True,
    )


def _handler() -> WSGIApplication:
    import django
    from django.core.handlers.wsgi import WSGIHandler

    django.setup()
    handler: WSGIApplication = WSGIHandler()  # reads settings.MIDDLEWARE now
    return handler


def build_bare() -> WSGIVariant:
    _configure([], [])
    return WSGIVariant(BARE, _handler(), None)


def build_telemetry_web() -> WSGIVariant:
    from telemetry_web import Telemetry
    from telemetry_web.django import set_telemetry

    exporter = CountingSpanExporter()
    sink = CountingLogSink()
    # The documented setup: the app, and the middleware first.
    _configure(["telemetry_web.django"], ["telemetry_web.django.DjangoTelemetryMiddleware"])
    tel = Telemetry(**telemetry_options(exporter, sink))
    # Before django.setup(): the app's ready() then finds this one instead of building its own.
    set_telemetry(tel)
    handler = _handler()
    return WSGIVariant(
        TELEMETRY_WEB, handler, lambda: telemetry_produced(tel, exporter, sink), tel.flush
    )


def build_otel_stack() -> WSGIVariant:
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from prometheus_client import REGISTRY

    global _request_logger
    provider, exporter = counting_tracer_provider()
    out = CountingDevNull()
    _request_logger = private_structlog(out)
    _configure(
        ["django_prometheus"],
        [
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            f"{__name__}.RequestLogMiddleware",
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ],
    )
    # Inserts OpenTelemetry's middleware first in settings.MIDDLEWARE. Metrics come from
    # django-prometheus; a no-op meter provider keeps OpenTelemetry's own out, as for ASGI.
    DjangoInstrumentor().instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    handler = _handler()

    def collect() -> Produced:
        flush_tracer_provider(provider)
        # django-prometheus counts on the process-global registry (one variant per process).
        requests = sum_samples(REGISTRY, "django_http_responses_total_by_status_view_method_total")
        return Produced(exporter.spans, exporter.root_spans, out.lines, requests)

    return WSGIVariant(OTEL_STACK, handler, collect, provider.force_flush)


BUILDERS: dict[str, Callable[[], WSGIVariant]] = {
    BARE: build_bare,
    TELEMETRY_WEB: build_telemetry_web,
    OTEL_STACK: build_otel_stack,
}


# gunicorn entry points: 'benchmarks.django_apps:bare_app()' etc.
def bare_app() -> WSGIApplication:
    return served(build_bare())


def telemetry_web_app() -> WSGIApplication:
    return served(build_telemetry_web())


def otel_stack_app() -> WSGIApplication:
    return served(build_otel_stack())


TARGETS: dict[str, str] = {
    BARE: "benchmarks.django_apps:bare_app()",
    TELEMETRY_WEB: "benchmarks.django_apps:telemetry_web_app()",
    OTEL_STACK: "benchmarks.django_apps:otel_stack_app()",
}
