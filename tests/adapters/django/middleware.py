"""Middleware the tests put after DjangoTelemetryMiddleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse


class ExplodeMiddleware:
    """Raises for ``/explode`` (a middleware's exception never reaches process_exception)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.path_info == "/explode":
            raise RuntimeError("middleware kaboom")
        return self.get_response(request)


class AlternateUrlconfMiddleware:
    """Routes ``/alt/...`` with ``tests.adapters.django.alt_urls`` (as django-hosts does)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.path_info.startswith("/alt/"):
            request.urlconf = "tests.adapters.django.alt_urls"
        return self.get_response(request)


class ShortCircuitMiddleware:
    """Answers ``/blocked`` with a 403 itself, without calling the view."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.path_info == "/blocked":
            return HttpResponse(b"no", status=403)
        return self.get_response(request)
