"""Configuration: the typed model, its sources and their precedence, and validation."""

from __future__ import annotations

from ._availability import not_built_yet
from ._model import (
    HealthSettings,
    HttpSettings,
    LoggingSettings,
    MetricsSettings,
    SamplingSettings,
    TelemetrySettings,
    TracingSettings,
)
from ._parse import parse_section, parse_settings
from ._sources import load_settings, read_yaml, settings_to_mapping
from ._units import parse_duration, parse_size

__all__ = [
    "HealthSettings",
    "HttpSettings",
    "LoggingSettings",
    "MetricsSettings",
    "SamplingSettings",
    "TelemetrySettings",
    "TracingSettings",
    "load_settings",
    "not_built_yet",
    "parse_duration",
    "parse_section",
    "parse_settings",
    "parse_size",
    "read_yaml",
    "settings_to_mapping",
]


def __getattr__(name: str) -> object:
    # Renamed in 0.2: every configuration class is a `…Settings`.
    if name == "Sampling":
        import warnings

        warnings.warn(
            "telemetry_web.config.Sampling is now SamplingSettings",
            DeprecationWarning,
            stacklevel=2,
        )
        return SamplingSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
