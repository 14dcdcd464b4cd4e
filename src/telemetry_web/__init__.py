"""telemetry-web: request spans, RED metrics, trace-correlated logs and health endpoints.

Example::

    from telemetry_web import Telemetry, TelemetryMiddleware

    telemetry = Telemetry(service="api")
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)

The names below are imported on first use: ``import telemetry_web.gunicorn`` in a gunicorn
master must not import prometheus-client before it has chosen the multiprocess directory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._multiprocess_env import prepare as _prepare_multiprocess
from ._otel_env import guard_imports as _guard_imports

__version__ = "0.1.0"

# Before anything imports prometheus_client: multiprocess mode for uvicorn's workers.
_prepare_multiprocess()

if TYPE_CHECKING:
    from ._engine import Telemetry
    from .asgi import TelemetryMiddleware
    from .config import TelemetrySettings, load_settings
    from .errors import ConfigError, MetricRegistrationError, MissingExtraError, TelemetryError

_LAZY = {
    "ConfigError": ".errors",
    "MetricRegistrationError": ".errors",
    "MissingExtraError": ".errors",
    "Telemetry": "._engine",
    "TelemetryError": ".errors",
    "TelemetryMiddleware": ".asgi",
    "TelemetrySettings": ".config",
    "load_settings": ".config",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'telemetry_web' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# Before anything of ours imports OpenTelemetry: a bad OTEL_PROPAGATORS (or span attribute
# limit) must not fail the import (see _otel_env).
_guard_imports()
