"""The public namespace: what `import telemetry_web` promises."""

from __future__ import annotations

import telemetry_web


def test_all_is_sorted_and_matches_the_namespace() -> None:
    """Every name in __all__ exists, and __all__ stays sorted so additions are deliberate."""
    assert telemetry_web.__all__ == sorted(telemetry_web.__all__)
    for name in telemetry_web.__all__:
        assert hasattr(telemetry_web, name), name


def test_public_api_is_exactly_this() -> None:
    """Changing the front door is a decision, not an accident."""
    assert set(telemetry_web.__all__) == {
        "ConfigError",
        "MetricRegistrationError",
        "MissingExtraError",
        "Telemetry",
        "TelemetryError",
        "TelemetryMiddleware",
        "TelemetrySettings",
        "__version__",
        "load_settings",
    }


def test_errors_form_one_hierarchy() -> None:
    """Callers can catch every deliberate error with TelemetryError, and the usual bases too."""
    assert issubclass(telemetry_web.ConfigError, telemetry_web.TelemetryError)
    assert issubclass(telemetry_web.ConfigError, ValueError)
    assert issubclass(telemetry_web.MetricRegistrationError, telemetry_web.TelemetryError)
    assert issubclass(telemetry_web.MissingExtraError, ImportError)
