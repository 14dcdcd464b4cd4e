"""What the launcher's hooks share in one process: its one Telemetry and their state.

:func:`process_telemetry` is the Telemetry of this process (Django's, one the app built, or the
default one); client instrumentations wait for it with :func:`when_telemetry_exists`. Every hook
runs through :func:`safely`, so an instrumentation that fails is skipped and logged, never
raised into the app. This module imports nothing of the launcher's.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = [
    "claimed",
    "covered_apps",
    "prepare_multiprocess",
    "process_telemetry",
    "safely",
    "telemetry_created",
    "when_telemetry_exists",
]

_log = logging.getLogger("telemetry_web.launcher")
_T = TypeVar("_T")

# The Telemetry of this process, and instrumentations waiting for it: a client library imported
# before any app is served waits, so a process that serves nothing builds no telemetry.
_telemetry_lock = threading.RLock()
_building = False
_pending: list[Callable[[Telemetry], None]] = []
#: Set by the Django hook once it has put the app and middleware into the settings.
django_active = False
#: The framework and server hooks that fired in this process (see :mod:`._notice`).
claimed: set[str] = set()
#: ids of the apps a server hook wrapped whole: the framework hooks add nothing inside them.
covered_apps: set[int] = set()


def safely(name: str, function: Callable[..., _T], *args: Any) -> _T | None:
    """``function(*args)``; an exception is logged (the ``name`` instrumentation is skipped)."""
    try:
        return function(*args)
    except ImportError as exc:
        _log.debug("telemetry-web launcher: %s skipped: %s", name, exc)
    except Exception:
        _log.warning("telemetry-web launcher: %s instrumentation failed; the app runs without it",
                     name, exc_info=True)  # fmt: skip
    return None


def prepare_multiprocess() -> None:
    """Point prometheus-client at the workers' shared directory before it is imported.

    ``import telemetry_web`` does this, but under the launcher it ran at interpreter start,
    before a spawned server worker knew it was one; hooks call this again before importing the
    engine.
    """
    from .._multiprocess_env import prepare

    prepare()


def process_telemetry(service_hint: str | None = None) -> Telemetry:
    """The one Telemetry of this process: Django's (built from its settings) when the Django
    hook is active, else one the app built itself, else
    :func:`~telemetry_web._engine.default_telemetry` (named ``service_hint`` when nothing
    configured a service). Instrumentations waiting for it are applied."""
    global _building
    prepare_multiprocess()
    with _telemetry_lock:
        if _building:
            raise RuntimeError("the process Telemetry is being built")
        _building = True
        try:
            telemetry = _existing()
            if telemetry is None:
                from .._engine import default_telemetry

                telemetry = default_telemetry(service_hint)
        finally:
            _building = False
    _apply_pending(telemetry)
    return telemetry


def when_telemetry_exists(name: str, callback: Callable[[Telemetry], None]) -> None:
    """``callback(process Telemetry)`` now if there is one, else once a hook or the app builds
    it; never builds one itself."""
    with _telemetry_lock:
        telemetry = None if _building else safely(name, _existing)
        if telemetry is None:
            _pending.append(callback)
            return
    safely(name, callback, telemetry)


def telemetry_created(telemetry: Telemetry) -> None:
    """Called after every ``Telemetry.__init__`` in the process (a hook on the engine): the app
    built its own, so waiting instrumentations use it."""
    with _telemetry_lock:
        if _building:
            return  # process_telemetry applies them when it is done
    _apply_pending(telemetry)


def _apply_pending(telemetry: Telemetry) -> None:
    with _telemetry_lock:
        pending, _pending[:] = list(_pending), []
    for callback in pending:
        safely(getattr(callback, "__name__", "instrumentation"), callback, telemetry)


def _existing() -> Telemetry | None:
    if django_active:
        from ..django import get_telemetry

        return get_telemetry()
    # Never import the engine from here: at interpreter start that would load prometheus-client
    # before a server worker knows it is one (see prepare_multiprocess).
    engine = sys.modules.get("telemetry_web._engine")
    if engine is None:
        return None
    default = engine._default
    if default is not None and not default._closed:
        return default  # type: ignore[no-any-return]
    for telemetry in list(engine._LIVE):
        if not telemetry._closed:
            return telemetry  # type: ignore[no-any-return]
    return None
