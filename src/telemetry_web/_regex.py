"""Reading regular-expression routes (Django's ``re_path``, regex routers such as datasette's)
well enough to turn them into route templates."""

from __future__ import annotations

__all__ = ["group_end"]


def group_end(pattern: str, start: int) -> int:
    """The index just after the group opening at ``start`` (escapes and classes skipped)."""
    depth = 0
    in_class = False
    i, n = start, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n
