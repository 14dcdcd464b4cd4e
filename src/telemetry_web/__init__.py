"""telemetry-web: request spans, RED metrics, trace-correlated logs and health endpoints.

from telemetry_web import Telemetry, TelemetryMiddleware

telemetry = Telemetry(service="api")
app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._engine import Telemetry
from .adapters.asgi import TelemetryMiddleware
from .config import TelemetrySettings, load_settings
from .errors import (
    ConfigError,
    MetricRegistrationError,
    MissingExtraError,
    TelemetryError,
)

__all__ = [
    "ConfigError",
    "MetricRegistrationError",
    "MissingExtraError",
    "Telemetry",
    "TelemetryError",
    "TelemetryMiddleware",
    "TelemetrySettings",
    "__version__",
    "load_settings",
]
