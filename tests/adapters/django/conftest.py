"""Django settings for these tests, and a captured Telemetry installed for each test.

Django is configured once, in-process, at collection: the test project is
``tests.adapters.django.urls``, ``telemetry_web.django`` is installed (so ``ready()`` and the
system checks run as in a real project) and the middleware is first in ``MIDDLEWARE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.conf import settings

from telemetry_web.django import set_telemetry
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

from ._support import ENVIRONMENT, SERVICE

MIDDLEWARE = [
    "telemetry_web.django.DjangoTelemetryMiddleware",
    "django.middleware.common.CommonMiddleware",
]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="telemetry-web-tests",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=["telemetry_web.django"],
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF="tests.adapters.django.urls",
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,  # records reach the Telemetry's stdlib bridge, nothing else
        # No local store: it would be the working directory's (the repository's, under pytest).
        TELEMETRY={
            "service": "django-settings",
            "logging": {"sinks": {"console": False}},
            "store": {"enabled": False},
        },
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            "UNAUTHENTICATED_USER": None,
        },
    )
    django.setup()

MakeCaptured = Callable[..., CapturedTelemetry]


@pytest.fixture
def make_captured() -> Iterator[MakeCaptured]:
    """``make_captured(**config)``: a captured Telemetry that the middleware records into."""
    created: list[CapturedTelemetry] = []

    def factory(**config: Any) -> CapturedTelemetry:
        service = config.pop("service", SERVICE)
        # With the opt-in body-size histograms, whose byte counts these tests check.
        metrics = {"metrics": {"size_histograms": True}}
        captured = capture_telemetry(
            {"environment": ENVIRONMENT, **metrics, **config}, service=service
        )
        created.append(captured)
        set_telemetry(captured.telemetry)
        return captured

    yield factory
    set_telemetry(None)
    for captured in created:
        captured.close()


@pytest.fixture
def captured(make_captured: MakeCaptured) -> CapturedTelemetry:
    """The Telemetry the middleware records into during this test."""
    return make_captured()


Fetch = Callable[..., Any]


@pytest.fixture(params=["wsgi", "asgi"])
def fetch(request: pytest.FixtureRequest) -> Fetch:
    """``fetch(path, method="GET", **kwargs)`` through Django's ``Client`` (WSGI handler) or
    ``AsyncClient`` (ASGI handler); a view's exception becomes the 500 Django answers."""
    from django.test import AsyncClient, Client

    mode = request.param

    def call(path: str, method: str = "GET", **kwargs: Any) -> Any:
        if mode == "wsgi":
            return Client(raise_request_exception=False).generic(method, path, **kwargs)

        async def go() -> Any:
            client = AsyncClient(raise_request_exception=False)
            return await client.generic(method, path, **kwargs)

        return asyncio.run(go())

    call.mode = mode  # type: ignore[attr-defined]
    return call
