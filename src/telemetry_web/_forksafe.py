"""Fork hooks that do not keep their owner alive, and do nothing once it is gone."""

from __future__ import annotations

import os
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
        ref = weakref.WeakMethod(method)

        def call() -> None:
            bound = ref()
            if bound is not None:
                bound()

        return call

    hooks = {
        "before": weak(before),
        "after_in_parent": weak(after_in_parent),
        "after_in_child": weak(after_in_child),
    }
    os.register_at_fork(**{k: v for k, v in hooks.items() if v is not None})
