"""Telling the user, once, when the launcher instruments nothing in a process that serves HTTP.

A framework or server hook that fires *claims* the process. A process that starts listening on
a TCP socket without any claim (an aiohttp or Tornado app, ``http.server``, a server we do not
know) gets one line on stderr naming what the launcher looked for; so does a known server
serving something we cannot wrap (granian's RSGI interface). The app always runs unchanged.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

import wrapt

from . import _process

__all__ = ["LOOKED_FOR", "claim", "say_once", "watch_listening_sockets"]

#: What the launcher instruments, as the notice names it.
LOOKED_FOR = (
    "uvicorn, hypercorn, granian (ASGI/WSGI), daphne and gunicorn servers, and Starlette, "
    "FastAPI, Flask and Django apps"
)

_said: set[str] = set()
_said_lock = threading.Lock()


def claim(name: str) -> None:
    """A framework or server hook fired in this process: listening is expected."""
    _process.claimed.add(name)


def say_once(key: str, message: str) -> None:
    """``message`` on stderr, the first time ``key`` is said in this process."""
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    try:
        sys.stderr.write(f"telemetry-web launcher: {message}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not cost the app anything
        pass


def watch_listening_sockets() -> None:
    """Wrap ``socket.listen`` (called once per server socket, never per request)."""
    wrapt.wrap_function_wrapper(socket, "socket.listen", _listening)


def _listening(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        if (
            not _process.claimed
            and instance.family in (socket.AF_INET, socket.AF_INET6)
            and instance.type == socket.SOCK_STREAM
        ):
            address = instance.getsockname()
            say_once(
                "unclaimed",
                f"this process listens on {address[0]}:{address[1]} but no app was found to "
                f"instrument (looked for {LOOKED_FOR}); it runs without telemetry",
            )
    except Exception:
        pass
    return result
