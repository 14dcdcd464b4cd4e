"""The Django app: builds the project's Telemetry once and registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from .._engine import Telemetry
from ._state import get_telemetry
from .checks import check_middleware

__all__ = ["TelemetryWebConfig"]


class TelemetryWebConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """``INSTALLED_APPS = [..., "telemetry_web.django"]``."""

    name = "telemetry_web.django"
    label = "telemetry_web"
    verbose_name = "telemetry-web"
    default = True

    def ready(self) -> None:
        checks.register(check_middleware)
        # Built here, at startup, so that a configuration error stops the project loudly.
        telemetry = get_telemetry()
        # Health checks run in a daemon thread under WSGI and ASGI alike (Django runs no
        # lifespan); a worker forked after this (gunicorn --preload) starts its own.
        telemetry.start_health_checks(thread=True)

    @property
    def telemetry(self) -> Telemetry:
        """The project's Telemetry (what :func:`telemetry_web.django.get_telemetry` returns)."""
        return get_telemetry()
