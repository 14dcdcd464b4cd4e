"""``OTEL_PROPAGATORS`` made unable to fail an import, and the one warning per bad variable.

``opentelemetry.propagate`` builds the global propagator from ``OTEL_PROPAGATORS`` when it is
first imported, and raises ``ValueError`` for a name that no installed distribution registers
in the ``opentelemetry_propagator`` entry-point group (``xray`` without the contrib package, a
typo). The SDK's own modules import it (``opentelemetry.instrumentation.utils``), so
``telemetry_web/__init__.py`` calls :func:`guard_imports` before anything else of ours can:
the module is imported with the variable narrowed to the names that can be loaded, the others
are left out with one warning (when none is left: ``tracecontext,baggage``, the SDK's default),
and the variable is restored afterwards. telemetry-web registers ``b3`` and ``b3multi`` itself
(``tracing/_b3.py``), so those work without the contrib package. ``opentelemetry.sdk.trace``
likewise fails its import on a bad ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``; it is imported without it.

Only the standard library is imported here: ``import telemetry_web`` stays light.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from importlib.metadata import entry_points
from types import ModuleType

__all__ = [
    "guard_imports",
    "import_propagate",
    "sanitised_propagators",
    "valid_limit",
    "warn_variable",
]

PROPAGATORS = "OTEL_PROPAGATORS"
DEFAULT_PROPAGATORS = "tracecontext,baggage"
GROUP = "opentelemetry_propagator"
SPAN_ATTRIBUTE_COUNT_LIMIT = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"

_log = logging.getLogger("telemetry_web.config")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_variable(name: str, value: str, message: str) -> None:
    """One warning per process for a variable's bad value (every reload reads it again)."""
    with _warned_lock:
        if (name, value) in _warned:
            return
        _warned.add((name, value))
    _log.warning("telemetry-web: %s", message)


def _loadable(name: str) -> bool:
    return bool(entry_points(group=GROUP, name=name))


def sanitised_propagators(value: str) -> tuple[str, list[str]]:
    """``value`` with only the propagators that can be loaded, and the names left out."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        return DEFAULT_PROPAGATORS, []
    if any(n.lower() == "none" for n in names):
        return "none", []
    known = [n for n in names if _loadable(n)]
    unknown = [n for n in names if n not in known]
    return (",".join(known) or DEFAULT_PROPAGATORS), unknown


def guard_imports() -> None:
    """Import the OpenTelemetry modules that read a variable at import time, with that variable
    made valid, when it is set and nothing imported them yet (nothing is imported otherwise)."""
    if os.environ.get(PROPAGATORS) is not None and "opentelemetry.propagate" not in sys.modules:
        import_propagate()
    limit = os.environ.get(SPAN_ATTRIBUTE_COUNT_LIMIT)
    if (
        limit is not None
        and not valid_limit(limit)
        and "opentelemetry.sdk.trace" not in sys.modules
    ):
        warn_variable(
            SPAN_ATTRIBUTE_COUNT_LIMIT,
            limit,
            f"ignoring {SPAN_ATTRIBUTE_COUNT_LIMIT}={limit!r}: expected a non-negative integer; "
            "using 128",
        )
        del os.environ[SPAN_ATTRIBUTE_COUNT_LIMIT]
        try:  # opentelemetry.sdk.trace reads this one at import (SPAN_ATTRIBUTE_COUNT_LIMIT)
            importlib.import_module("opentelemetry.sdk.trace")
        finally:
            os.environ[SPAN_ATTRIBUTE_COUNT_LIMIT] = limit


def valid_limit(raw: str) -> bool:
    """Whether the SDK accepts ``raw`` as a limit: a non-negative integer or ``unset``."""
    text = raw.strip().lower()
    if text == "unset":
        return True
    try:
        return int(text) >= 0
    except ValueError:
        return False


def import_propagate() -> ModuleType:
    """``opentelemetry.propagate``, imported with a loadable ``OTEL_PROPAGATORS``."""
    if "opentelemetry.propagate" in sys.modules:  # imported before us: nothing left to guard
        return sys.modules["opentelemetry.propagate"]
    value = os.environ.get(PROPAGATORS)
    if value is None:
        return importlib.import_module("opentelemetry.propagate")
    safe, unknown = sanitised_propagators(value)
    if unknown:
        warn_variable(
            PROPAGATORS,
            value,
            f"ignoring {', '.join(map(repr, unknown))} in {PROPAGATORS}={value!r}: no installed "
            f"propagator has that name; using {safe}",
        )
    try:
        return _import_with(safe)
    except Exception as exc:  # an installed propagator that fails to load
        sys.modules.pop("opentelemetry.propagate", None)
        warn_variable(
            PROPAGATORS,
            value,
            f"ignoring {PROPAGATORS}={value!r}: {exc!r} while loading it; "
            f"using {DEFAULT_PROPAGATORS}",
        )
        return _import_with(DEFAULT_PROPAGATORS)
    finally:
        os.environ[PROPAGATORS] = value


def _import_with(value: str) -> ModuleType:
    os.environ[PROPAGATORS] = value
    return importlib.import_module("opentelemetry.propagate")
