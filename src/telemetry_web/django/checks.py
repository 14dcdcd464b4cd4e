"""System checks: the middleware is in ``MIDDLEWARE``, and first.

``telemetry_web.W001``: it is missing, so no request is recorded.
``telemetry_web.W002``: it is not first, so the middleware before it is not timed, and their
responses (a redirect, a 403, an error page) are not seen.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

__all__ = ["MIDDLEWARE_PATH", "check_middleware"]

MIDDLEWARE_PATH = "telemetry_web.django.DjangoTelemetryMiddleware"
# The name and the deprecated former one, each at the package and at the module.
_OUR_PATHS = frozenset({
    MIDDLEWARE_PATH,
    "telemetry_web.django.middleware.DjangoTelemetryMiddleware",
    "telemetry_web.django.TelemetryMiddleware",
    "telemetry_web.django.middleware.TelemetryMiddleware",
})  # fmt: skip


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    positions = [i for i, entry in enumerate(middleware) if _is_ours(entry)]
    if not positions:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: no request is recorded.",
                hint=f"Add {MIDDLEWARE_PATH!r} as the first entry of MIDDLEWARE.",
                obj="settings.MIDDLEWARE",
                id="telemetry_web.W001",
            )
        ]
    if positions[0] != 0:
        before = ", ".join(repr(entry) for entry in middleware[: positions[0]])
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not the first entry of MIDDLEWARE: the time spent in "
                f"{before} is not measured, and the responses it returns are not recorded.",
                hint=f"Move {MIDDLEWARE_PATH!r} to the top of MIDDLEWARE.",
                obj="settings.MIDDLEWARE",
                id="telemetry_web.W002",
            )
        ]
    return []


def _is_ours(entry: Any) -> bool:
    if entry in _OUR_PATHS:
        return True
    from .middleware import DjangoTelemetryMiddleware

    try:
        cls = import_string(entry)
    except Exception:  # Django reports unimportable middleware itself
        return False
    return isinstance(cls, type) and issubclass(cls, DjangoTelemetryMiddleware)
