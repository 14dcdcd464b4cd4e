"""The resource every span carries: service name, version and environment merged with
``resource_attributes`` and ``OTEL_RESOURCE_ATTRIBUTES``."""

from __future__ import annotations

from typing import Any

import pytest

from telemetry_web import Telemetry

from .conftest import Capture


def resource_of(capture: Capture, config: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    telemetry = capture(config, **kwargs).telemetry
    assert telemetry.tracer_provider is not None
    return dict(telemetry.tracer_provider.resource.attributes)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* or TELEMETRY_* variable of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith(("OTEL_", "TELEMETRY_")):
            monkeypatch.delenv(name)


def test_service_version_and_environment() -> None:
    """service, service_version and environment become service.name, service.version and
    deployment.environment (and .name), next to the SDK's and our own identification."""
    telemetry = Telemetry(
        {"service": "orders", "service_version": "1.4.2", "environment": "prod",
         "logging": {"sinks": {"console": False}}},
        use_env=False, set_global=False,
    )  # fmt: skip
    try:
        assert telemetry.tracer_provider is not None
        attributes = dict(telemetry.tracer_provider.resource.attributes)
    finally:
        telemetry.shutdown()
    assert attributes["service.name"] == "orders"
    assert attributes["service.version"] == "1.4.2"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["deployment.environment.name"] == "prod"
    assert attributes["telemetry.sdk.language"] == "python"
    assert attributes["telemetry.sdk.name"] == "opentelemetry"
    assert attributes["telemetry.distro.name"] == "telemetry-web"


def test_resource_attributes_are_merged(capture: Capture) -> None:
    """resource_attributes add their keys; service and environment, when set, win over the
    same keys there."""
    attributes = resource_of(
        capture,
        {"environment": "prod", "tracing": {"resource_attributes": {
            "team": "payments", "service.name": "other", "deployment.environment": "staging",
        }}},
        service="orders",
    )  # fmt: skip
    assert attributes["team"] == "payments"
    assert attributes["service.name"] == "orders"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["deployment.environment.name"] == "prod"
    assert "service.version" not in attributes


def test_resource_attributes_fill_in_what_is_left_at_its_default() -> None:
    """With service and environment left at their defaults, resource_attributes name them;
    service.version there wins over service_version."""
    telemetry = Telemetry(
        {"service_version": "1.0", "logging": {"sinks": {"console": False}},
         "tracing": {"resource_attributes": {"service.name": "billing",
                                             "deployment.environment.name": "qa",
                                             "service.version": "2.0"}}},
        use_env=False, set_global=False,
    )  # fmt: skip
    try:
        assert telemetry.tracer_provider is not None
        attributes = dict(telemetry.tracer_provider.resource.attributes)
    finally:
        telemetry.shutdown()
    assert attributes["service.name"] == "billing"
    assert attributes["deployment.environment"] == "qa"
    assert attributes["deployment.environment.name"] == "qa"
    assert attributes["service.version"] == "2.0"


def test_otel_resource_attributes_from_the_environment(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_RESOURCE_ATTRIBUTES is merged in; OTEL_SERVICE_NAME wins over its service.name,
    in the resource as in the metrics' service label."""
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "team=payments,service.name=from-attributes,service.version=9.1,"
        "deployment.environment=canary",
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")
    captured = capture({"service_version": "1.0"}, use_env=True)
    provider = captured.telemetry.tracer_provider
    assert provider is not None
    attributes = dict(provider.resource.attributes)
    assert attributes["team"] == "payments"
    assert attributes["service.name"] == "from-service-name"
    assert captured.telemetry.settings.service == "from-service-name"
    assert attributes["service.version"] == "9.1"
    assert attributes["deployment.environment"] == "canary"
    assert attributes["deployment.environment.name"] == "canary"


def test_telemetry_service_version_variable(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELEMETRY_SERVICE_VERSION sets service_version like any other key."""
    monkeypatch.setenv("TELEMETRY_SERVICE_VERSION", "3.2.1")
    assert resource_of(capture, {}, use_env=True)["service.version"] == "3.2.1"


def test_the_environment_is_not_read_with_use_env_false(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """use_env=False keeps OTEL_RESOURCE_ATTRIBUTES out of the resource too (the SDK's
    Resource.create would have read it)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=leaked,service.name=leaked")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "leaked")
    attributes = resource_of(capture, {}, use_env=False)
    assert "team" not in attributes
    assert attributes["service.name"] == "test"


def test_spans_carry_the_resource(capture: Capture) -> None:
    """Spans from the tracer API carry the merged resource."""
    captured = capture({"service_version": "5", "tracing": {"resource_attributes": {"a": "b"}}})
    captured.telemetry.get_tracer("orders").start_span("x").end()
    (span,) = captured.spans()
    assert span.resource.attributes["service.version"] == "5"
    assert span.resource.attributes["a"] == "b"
    assert span.resource.attributes["service.name"] == "test"
