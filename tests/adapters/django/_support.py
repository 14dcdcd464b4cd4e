"""Helpers for the Django adapter tests: /metrics parsing and label sets."""

from __future__ import annotations

from typing import Any

SERVICE = "django-test"
ENVIRONMENT = "test"
BASE_LABELS = {"service": SERVICE, "environment": ENVIRONMENT}
UNMATCHED = "<unmatched>"


def labels(method: str, route: str, status: int | str, **base: str) -> dict[str, str]:
    """The full label set of one default-naming request series."""
    return {**(base or BASE_LABELS), "method": method, "route": route, "status": str(status)}


def request_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("logger") == "telemetry_web.request"]


def count(captured: Any, method: str, route: str, status: int | str) -> float | None:
    """``http_requests_total`` of one (method, route, status) in a CapturedTelemetry."""
    return captured.sample(  # type: ignore[no-any-return]
        "http_requests_total", method=method, route=route, status=str(status)
    )
