"""The one process-wide Telemetry of a Django project, built once from the settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from .._engine import Telemetry
from ..config import load_settings
from ..errors import ConfigError
from ..semconv import DEFAULT_SERVICE

__all__ = ["build_telemetry", "get_telemetry", "service_from_settings_module", "set_telemetry"]


_built: Telemetry | None = None
_override: Telemetry | None = None
_lock = threading.Lock()


def get_telemetry() -> Telemetry:
    """The project's Telemetry: the one ``set_telemetry`` installed, else the one built from
    the settings (by ``AppConfig.ready()``, or here on first use)."""
    if _override is not None:
        return _override
    if _built is not None:
        return _built
    return _build_once()


def set_telemetry(telemetry: Telemetry | None) -> Telemetry | None:
    """Record into ``telemetry`` from now on (``None``: back to the settings' one).

    For tests (``telemetry_web.testing.capture_telemetry()``) and for projects that build their
    Telemetry in code. Returns the Telemetry installed before, if any.
    """
    global _override
    previous, _override = _override, telemetry
    return previous


def _build_once() -> Telemetry:
    global _built
    with _lock:
        if _built is None:
            _built = build_telemetry()
        return _built


def build_telemetry() -> Telemetry:
    """A Telemetry from the ``TELEMETRY`` setting, ``$TELEMETRY_CONFIG`` and the environment.

    Raises:
        ConfigError: the configuration is invalid (naming the key path), or ``TELEMETRY`` is
            neither a mapping nor a path.
    """
    from django.conf import settings

    config: Any = getattr(settings, "TELEMETRY", None)
    if config is not None and not isinstance(config, Mapping | str | os.PathLike):
        raise ConfigError(
            [f"TELEMETRY: expected a mapping or the path of a YAML file, got {config!r}"],
            source="Django settings",
        )
    loaded = load_settings(config)
    if loaded.service == DEFAULT_SERVICE:
        derived = service_from_settings_module(getattr(settings, "SETTINGS_MODULE", None))
        if derived is not None:
            # Below the environment (which still wins), above nothing that named a service.
            loaded = load_settings(config, service=derived)
    return Telemetry(loaded)


def service_from_settings_module(module: str | None) -> str | None:
    """``mysite.settings`` -> ``mysite``; ``config.settings.production`` -> ``config``."""
    if not module:
        return None
    parts = module.split(".")[:-1]
    while parts and parts[-1] == "settings":
        parts.pop()
    return parts[-1] if parts else None
