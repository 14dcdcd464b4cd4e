"""Django: one app entry and one middleware entry.

    # settings.py
    INSTALLED_APPS = [..., "telemetry_web.django"]
    MIDDLEWARE = [
        "telemetry_web.django.DjangoTelemetryMiddleware",   # first: it times everything after it
        "django.middleware.security.SecurityMiddleware",   # then the others
    ]
    TELEMETRY = {"service": "orders", "environment": "prod"}   # optional, the YAML schema

Every HTTP request gets one server span, its RED metrics and one request log line, under WSGI
(``gunicorn project.wsgi``) and ASGI (``uvicorn project.asgi:application``) alike: the middleware
is sync- and async-capable and follows the mode of the middleware after it, so it adds no
sync/async switch. ``/metrics``, ``/health`` and ``/ready`` (GET and HEAD) are answered by the
middleware itself: no ``urls.py`` entry is needed, and they are kept out of metrics, spans and
logs. The first entry of ``MIDDLEWARE`` is the documented position; system checks warn when
the middleware is missing (``telemetry_web.W001``) or not first (``telemetry_web.W002``).

Configuration, lowest precedence first: ``$TELEMETRY_CONFIG`` (a YAML file), the ``TELEMETRY``
setting (a mapping shaped like the YAML file, or the path of one), then the ``OTEL_*`` and
``TELEMETRY_*`` variables. Without a ``service`` anywhere, the service is named after the
package that holds the settings module (``mysite`` for ``mysite.settings``; a package named
``settings`` is skipped: ``config`` for ``config.settings.production``). ``AppConfig.ready()``
builds the one process-wide :class:`~telemetry_web.Telemetry`; :func:`get_telemetry` returns it::

    from telemetry_web.django import get_telemetry

    log = get_telemetry().get_logger("orders")   # lines carry trace_id, span_id, request_id

Route labels are the resolved URL pattern with a leading slash, joined across ``include()``:
``/api/users/<int:user_id>``. ``re_path`` patterns lose their ``^``/``$`` anchors and show each
named group as ``<name>`` (a Django REST framework detail route: ``/api/users/<pk>/``). A request
no pattern matches is labelled ``<unmatched>``.

Exceptions raised by views are recorded on the span and the log line of the 500 that Django
returns. Streamed responses (``StreamingHttpResponse``, ``FileResponse``) are timed to the end of
the stream: the span ends and the request is counted when the server closes the response.

``telemetry_web.django.TelemetryMiddleware`` (and ``…django.middleware.TelemetryMiddleware``),
the middleware's former name, still works in ``MIDDLEWARE`` and emits a
``DeprecationWarning``.

Tests record into their own Telemetry: ``set_telemetry(captured.telemetry)`` (see
:mod:`telemetry_web.testing`), or ``DjangoTelemetryMiddleware(get_response, telemetry=...)``.
"""

from __future__ import annotations

from ..errors import MissingExtraError

try:
    import asgiref  # noqa: F401
    import django  # noqa: F401
except ImportError as exc:
    raise MissingExtraError("telemetry_web.django", exc.name or "django", "django") from None

from typing import Any

from ._state import get_telemetry, set_telemetry
from .middleware import DjangoTelemetryMiddleware, warn_renamed

__all__ = ["DjangoTelemetryMiddleware", "get_telemetry", "set_telemetry"]


def __getattr__(name: str) -> Any:
    if name == "TelemetryMiddleware":  # the former name, still in many MIDDLEWARE settings
        warn_renamed(f"{__name__}.TelemetryMiddleware")
        return DjangoTelemetryMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
