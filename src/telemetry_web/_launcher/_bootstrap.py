"""What ``sitecustomize.py`` runs at interpreter start under ``telemetry run``.

:func:`initialize` registers the post-import hooks of :mod:`._hooks` (once per process: a forked
worker inherits them, a spawned one registers its own), then runs the ``sitecustomize`` that ours
shadows, if there is one. It imports nothing but the standard library and wrapt: prometheus-client
must not be imported before the multiprocess directory is chosen (gunicorn's master, uvicorn's
workers), so every hook prepares that first. Every exception is caught and logged; the app runs
in any case. A library the app never imports is never hooked (logged at debug).

Imports go one way: this module → :mod:`._hooks` → :mod:`._servers` → :mod:`._process` (the
process's Telemetry and what the hooks share); nothing imports this module but
``sitecustomize.py``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading

from . import BOOTSTRAP_DIR, disabled_instrumentations

__all__ = ["initialize"]

_log = logging.getLogger("telemetry_web.launcher")

_initialized = False
_init_lock = threading.Lock()


def initialize() -> None:
    """Register the launcher's import hooks in this process (idempotent); never raises."""
    global _initialized
    with _init_lock:
        if _initialized:
            return
        _initialized = True
    try:
        from . import _hooks, _notice

        disabled = disabled_instrumentations()
        registered = _hooks.register(disabled)
        _notice.watch_listening_sockets()
        _log.debug(
            "telemetry-web launcher: hooks for %s (disabled: %s)",
            ", ".join(registered),
            ", ".join(sorted(disabled)) or "none",
        )
    except Exception:
        _log.warning("telemetry-web launcher: start-up failed; the app runs uninstrumented",
                     exc_info=True)  # fmt: skip
    _run_shadowed_sitecustomize()


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
