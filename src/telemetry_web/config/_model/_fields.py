"""Field metadata shared by the settings classes, read by ``config/_parse.py``:

- ``unit``: ``"duration"`` (``10s``, ``5m``, ``15d`` or seconds) or ``"size"`` (``100MB`` or bytes);
- ``check``: a predicate on the converted value, with ``expect`` saying what it accepts;
- ``kinds``: on a tagged section (one with a ``type`` field), the types a key applies to;
- ``secret``: the value never appears in an error message.
"""

from __future__ import annotations

import re
from typing import Any, Literal

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Propagator = Literal["w3c", "b3", "b3multi", "baggage"]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _meta(
    *,
    unit: str | None = None,
    check: Any = None,
    expect: str | None = None,
    kinds: tuple[str, ...] | None = None,
    secret: bool = False,
) -> dict[str, Any]:
    return {"unit": unit, "check": check, "expect": expect, "kinds": kinds, "secret": secret}


def _positive(value: float) -> bool:
    return value > 0


def _port(value: int) -> bool:
    return 0 < value < 65536


def _url_path(value: str) -> bool:
    return value.startswith("/") and " " not in value


# Labels that every telemetry-web metric already has, and those Prometheus reserves.
RESERVED_LABELS = frozenset({"le", "quantile", "service", "environment", "method", "route",
                             "status"})  # fmt: skip


def _label_names(value: dict[str, str]) -> bool:
    return all(
        _LABEL_NAME.match(k) and not k.startswith("__") and k not in RESERVED_LABELS for k in value
    )


POSITIVE = _meta(check=_positive, expect="a positive number")
POSITIVE_SIZE = _meta(
    unit="size", check=_positive, expect="a positive size such as '4MiB', '512KB' or bytes"
)
PORT = _meta(check=_port, expect="a port number from 1 to 65535")
URL_PATH = _meta(check=_url_path, expect="a URL path starting with '/'")


def _http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def _push_url(value: str) -> bool:
    return _http_url(value)


PUSH_DURATION = _meta(unit="duration", check=_positive, expect="a positive duration such as '15s'")


POSITIVE_DURATION = _meta(
    unit="duration", check=_positive, expect="a positive duration such as '500ms' or '10s'"
)
