"""Event timestamps as ISO-8601 UTC text with milliseconds, the form every sink writes.

Compiled with the request path (scripts/compile.py): the writer thread dates every event.
"""

from __future__ import annotations

import time
from typing import Any, Final

__all__ = ["iso_utc"]

_gmtime: Final = time.gmtime
_strftime: Final = time.strftime
# The ISO suffix of each millisecond, and the last second's ISO prefix: one strftime a second.
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_last_second: Final[list[Any]] = [None, ""]


def iso_utc(ts: float) -> str:
    """``2026-11-29T22:18:10.883Z`` for an epoch timestamp."""
    whole = int(ts)
    second = _last_second
    if second[0] != whole:
        second[1] = _strftime("%Y-%m-%dT%H:%M:%S", _gmtime(whole))
        second[0] = whole
    ms = int((ts - whole) * 1000)
    prefix: str = second[1]
    if 0 <= ms < 1000:
        return prefix + _MILLIS[ms]
    return f"{prefix}.{ms:03d}Z"  # before 1970
