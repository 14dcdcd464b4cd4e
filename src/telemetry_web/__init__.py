"""telemetry-web: request spans, RED metrics, trace-correlated logs and health endpoints.

Example::

    from telemetry_web import Telemetry, TelemetryMiddleware

    telemetry = Telemetry(service="api")
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
"""

from __future__ import annotations

__version__ = "0.1.0"

# Before anything imports prometheus_client: multiprocess mode for uvicorn's workers.
from ._multiprocess_env import prepare as _prepare_multiprocess

_prepare_multiprocess()

from ._engine import Telemetry  # noqa: E402
from .adapters.asgi import TelemetryMiddleware  # noqa: E402
from .config import TelemetrySettings, load_settings  # noqa: E402
from .errors import (  # noqa: E402
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
