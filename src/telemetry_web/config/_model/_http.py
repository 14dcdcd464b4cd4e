"""The ``http:`` and ``store:`` sections: request handling and the embedded store."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ._fields import POSITIVE_DURATION, POSITIVE_SIZE, _meta

# --- HTTP request handling -------------------------------------------------------------------


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_names(value: tuple[str, ...]) -> bool:
    return all(_HEADER_NAME.match(name) for name in value)


HEADER_NAMES = _meta(check=_header_names, expect="HTTP header names such as 'X-Tenant'")


@dataclass(frozen=True, kw_only=True)
class CaptureHeadersSettings:
    """Headers recorded on server spans, as OpenTelemetry names them: ``request`` values in
    ``http.request.header.<lower-case name>``, ``response`` values in
    ``http.response.header.<lower-case name>`` (lists of strings). Credentials (and
    ``http.redact_headers``) are recorded as ``REDACTED``."""

    request: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)
    response: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    # Paths (exact, or prefixes ending in '*') kept out of spans, request metrics and request logs,
    # in addition to the metrics and health endpoints, which are always excluded.
    exclude_paths: tuple[str, ...] = ()
    # Header names and query parameters redacted on top of the built-in sensitive ones.
    redact_headers: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)
    redact_query_params: tuple[str, ...] = ()
    request_id_header: str = "X-Request-ID"
    capture_headers: CaptureHeadersSettings = field(default_factory=CaptureHeadersSettings)


# --- the embedded store ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """The local SQLite store that the ``telemetry`` CLI reads. ``enabled: auto`` (the default)
    writes spans there when no span exporter is configured and log events when no file,
    Elasticsearch or OTLP sink is; ``true`` always, ``false`` never."""

    enabled: Literal["auto", "true", "false"] = "auto"
    path: str = "./.telemetry/telemetry.db"
    retention: float = field(default=15 * 86400.0, metadata=POSITIVE_DURATION)
    # How long a writer waits for another process's write lock before the batch is dropped.
    busy_timeout: float = field(default=5.0, metadata=POSITIVE_DURATION)
    # Past this size (pages in use) the oldest spans and log lines are deleted first.
    max_size: int = field(default=1 << 30, metadata=POSITIVE_SIZE)
