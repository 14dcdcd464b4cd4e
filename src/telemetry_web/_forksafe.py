"""Fork hooks that do not keep their owner alive, and do nothing once it is gone."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any


def register_at_fork(
    *,
    before: Callable[[], Any] | None = None,
    after_in_parent: Callable[[], Any] | None = None,
    after_in_child: Callable[[], Any] | None = None,
) -> None:
    """``os.register_at_fork`` with bound methods held weakly (hooks cannot be unregistered)."""
    if not hasattr(os, "register_at_fork"):
        return

    def weak(method: Callable[[], Any] | None) -> Callable[[], None] | None:
        if method is None:
            return None
        # The owner held weakly, its function strongly: a compiled method's function (see
        # scripts/compile.py) cannot be referenced weakly, as WeakMethod would.
        owner = weakref.ref(method.__self__)  # type: ignore[attr-defined]
        function = method.__func__  # type: ignore[attr-defined]

        def call() -> None:
            target = owner()
            if target is not None:
                function(target)

        return call

    hooks = {
        "before": weak(before),
        "after_in_parent": weak(after_in_parent),
        "after_in_child": weak(after_in_child),
    }
    os.register_at_fork(**{k: v for k, v in hooks.items() if v is not None})


class ForkLock:
    """A lock that ``fork()`` waits for: held by a background thread around work that takes
    other locks (a stream's, prometheus-client's), so no child is forked with one of them held
    by a thread it does not have. In the child the lock is new and ``after_in_child`` runs
    (typically: start that background thread again)."""

    def __init__(self, after_in_child: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        self._after_in_child = after_in_child
        register_at_fork(
            before=self._before, after_in_parent=self._in_parent, after_in_child=self._in_child
        )

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()

    def _before(self) -> None:
        self._lock.acquire()

    def _in_parent(self) -> None:
        self._lock.release()

    def _in_child(self) -> None:
        self._lock = threading.Lock()
        self._after_in_child()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
