"""What ``sitecustomize.py`` runs at interpreter start under ``telemetry run``.

:func:`initialize` registers the post-import hooks of :mod:`._hooks` (once per process: a forked
worker inherits them, a spawned one registers its own), then runs the ``sitecustomize`` that ours
shadows, if there is one. It imports nothing but the standard library and wrapt: prometheus-client
must not be imported before the multiprocess directory is chosen (gunicorn's master, uvicorn's
workers), so every hook prepares that first. Every exception is caught and logged; the app runs
in any case. A library the app never imports is never hooked (logged at debug).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import BOOTSTRAP_DIR, disabled_instrumentations

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = ["initialize", "process_telemetry", "safely"]

_log = logging.getLogger("telemetry_web.launcher")
_T = TypeVar("_T")

_initialized = False
_init_lock = threading.Lock()
# The Telemetry of this process, and hooks that fired while it was being built (building it
# may import a hooked library: they run once it exists instead of building it again).
_telemetry_lock = threading.RLock()
_building = False
_pending: list[Callable[[Telemetry], None]] = []
#: Set by the Django hook once it has put the app and middleware into the settings.
django_active = False


def initialize() -> None:
    """Register the launcher's import hooks in this process (idempotent); never raises."""
    global _initialized
    with _init_lock:
        if _initialized:
            return
        _initialized = True
    try:
        from . import _hooks

        disabled = disabled_instrumentations()
        registered = _hooks.register(disabled)
        _log.debug(
            "telemetry-web launcher: hooks for %s (disabled: %s)",
            ", ".join(registered),
            ", ".join(sorted(disabled)) or "none",
        )
    except Exception:
        _log.warning("telemetry-web launcher: start-up failed; the app runs uninstrumented",
                     exc_info=True)  # fmt: skip
    _run_shadowed_sitecustomize()


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
    before a spawned uvicorn worker knew it was one; hooks call this again before importing the
    engine.
    """
    from .._multiprocess_env import prepare

    prepare()


def process_telemetry() -> Telemetry:
    """The one Telemetry of this process: Django's (built from its settings) when the Django
    hook is active, otherwise :func:`~telemetry_web._engine.default_telemetry`."""
    global _building
    prepare_multiprocess()
    with _telemetry_lock:
        if _building:
            raise RuntimeError("the process Telemetry is being built")  # use with_telemetry
        _building = True
        try:
            telemetry = _build()
        finally:
            _building = False
        pending, _pending[:] = list(_pending), []
    for callback in pending:
        safely(getattr(callback, "__name__", "instrumentation"), callback, telemetry)
    return telemetry


def pending_until_telemetry(name: str, callback: Callable[[Telemetry], None]) -> None:
    """``callback(process Telemetry)`` once it is built, or now if it already was."""
    # Never import the engine from here: at interpreter start that would load prometheus-client
    # before a uvicorn worker knows it is one (see prepare_multiprocess).
    engine = sys.modules.get("telemetry_web._engine")
    with _telemetry_lock:
        if (engine is None or engine._default is None) and not django_active:
            _pending.append(callback)
            return
    with_telemetry(name, callback)


def with_telemetry(name: str, callback: Callable[[Telemetry], None]) -> None:
    """``callback(process Telemetry)`` now, or once the Telemetry being built exists."""
    with _telemetry_lock:
        if _building:
            _pending.append(callback)
            return
    telemetry = safely(name, process_telemetry)
    if telemetry is not None:
        safely(name, callback, telemetry)


def _build() -> Telemetry:
    if django_active:
        from ..django import get_telemetry

        return get_telemetry()
    from .._engine import default_telemetry

    return default_telemetry()


def _run_shadowed_sitecustomize() -> None:
    """Ours hides any ``sitecustomize`` later on ``sys.path`` (a virtualenv's, a distro's): run
    it as Python would have."""
    try:
        ours = os.path.normcase(os.path.abspath(BOOTSTRAP_DIR))
        path = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != ours]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:
        _log.warning("telemetry-web launcher: the shadowed sitecustomize failed", exc_info=True)
