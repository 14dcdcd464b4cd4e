"""Fixtures of the conformance suite: one recording per adapter, and the ASGI reference.

Django is configured once per process. ``tests.adapters.django.conftest`` does it at import, so
this suite imports that very module: whether the Django adapter tests were collected first
(``pytest tests``) or not at all (``pytest tests/conformance``), the settings are the same ones
(the telemetry middleware first in ``MIDDLEWARE``, ``telemetry_web.django`` installed). The
conformance endpoints are then installed for the Django driver alone, with
``override_settings(ROOT_URLCONF="tests.conformance.django_urls")``.
"""

from __future__ import annotations

import pytest

import tests.adapters.django.conftest  # noqa: F401  (configures Django settings, once)

from ._adapters import ADAPTER_NAMES, ADAPTERS, REFERENCE, Adapter, Recording, recorded


@pytest.fixture(scope="session", params=ADAPTER_NAMES)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """The adapter under test: its app builder, its driver and its route template syntax."""
    return ADAPTERS[request.param]


@pytest.fixture(scope="session")
def recording(adapter: Adapter) -> Recording:
    """What the adapter recorded for the shared request list (driven once per session)."""
    return recorded(adapter.name)


@pytest.fixture(scope="session")
def reference() -> Recording:
    """What the ASGI middleware under Starlette recorded: the behaviour others must match."""
    return recorded(REFERENCE)
