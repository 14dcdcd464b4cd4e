"""The zero-code launcher: ``telemetry run -- <command>`` (alias ``telemetry-instrument``).

``run`` puts :data:`BOOTSTRAP_DIR` (a directory holding only a ``sitecustomize.py``) first on
``PYTHONPATH`` and execs the command unchanged. Every Python interpreter started from it (the
server, gunicorn's forked workers, uvicorn's spawned ``--workers`` and ``--reload`` children)
runs :func:`~telemetry_web._launcher._bootstrap.initialize` at start-up, which registers wrapt
post-import hooks: frameworks get the adapters and client libraries their instrumentors when,
and only if, the app imports them. Nothing the bootstrap does can stop the app: every exception
is caught and logged.

Instrumentations are named (:data:`INSTRUMENTATIONS`) and can be switched off with
``TELEMETRY_DISABLED_INSTRUMENTATIONS=redis,httpx`` (:data:`DISABLED_ENV`).
"""

from __future__ import annotations

import os

from ..semconv import ENV_DISABLED_INSTRUMENTATIONS

__all__ = ["BOOTSTRAP_DIR", "DISABLED_ENV", "INSTRUMENTATIONS", "disabled_instrumentations"]

#: The directory ``telemetry run`` puts first on ``PYTHONPATH`` (it holds ``sitecustomize.py``).
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")

#: Comma-separated names of instrumentations the launcher must not apply.
DISABLED_ENV = ENV_DISABLED_INSTRUMENTATIONS

#: Every instrumentation the launcher applies, by the name ``TELEMETRY_DISABLED_INSTRUMENTATIONS``
#: uses: servers (the app they serve, wrapped whole), frameworks (``wsgi`` is any other WSGI app
#: served by gunicorn; ``gunicorn`` is the multi-worker metrics set-up of gunicorn's master) and
#: client libraries. Disabling a framework also keeps the servers from wrapping its apps.
INSTRUMENTATIONS = (
    "uvicorn",
    "hypercorn",
    "granian",
    "daphne",
    "starlette",
    "fastapi",
    "flask",
    "django",
    "wsgi",
    "gunicorn",
    "sqlalchemy",
    "redis",
    "httpx",
    "requests",
)


def disabled_instrumentations(environ: os._Environ[str] | dict[str, str] | None = None) -> set[str]:
    """The names listed in ``TELEMETRY_DISABLED_INSTRUMENTATIONS`` (lower-cased, trimmed)."""
    value = (os.environ if environ is None else environ).get(DISABLED_ENV, "")
    return {name.strip().lower() for name in value.split(",") if name.strip()}
