"""The ``health:`` section: dependency checks and their thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._fields import PORT, POSITIVE, POSITIVE_DURATION, URL_PATH, _meta

# --- health ----------------------------------------------------------------------------------


def _percent(value: float) -> bool:
    return 0 < value <= 100


@dataclass(frozen=True, kw_only=True)
class HealthCheckTargetSettings:
    """What one health check looks at: ``tcp {host, port}``, ``http {url, method,
    expected_status, headers}``, ``script {command}``, ``disk {path, min_free,
    min_free_percent}``, ``sqlalchemy {url}`` (``SELECT 1``), ``redis {url}`` (``PING``) or
    ``function {target: "module:function"}``."""

    type: Literal["tcp", "http", "script", "disk", "sqlalchemy", "redis", "function"]
    host: str | None = field(default=None, metadata=_meta(kinds=("tcp",)))
    port: int | None = field(default=None, metadata={**PORT, "kinds": ("tcp",)})
    url: str | None = field(
        default=None, metadata=_meta(kinds=("http", "sqlalchemy", "redis"), secret=True)
    )
    method: str = field(default="GET", metadata=_meta(kinds=("http",)))
    expected_status: int = field(default=200, metadata=_meta(kinds=("http",)))
    headers: dict[str, str] = field(
        default_factory=dict, metadata=_meta(kinds=("http",), secret=True)
    )
    command: str | None = field(default=None, metadata=_meta(kinds=("script",)))
    path: str | None = field(default=None, metadata=_meta(kinds=("disk",)))
    min_free: int | None = field(default=None, metadata=_meta(unit="size", kinds=("disk",)))
    min_free_percent: float | None = field(
        default=None,
        metadata=_meta(check=_percent, expect="a percentage above 0, at most 100", kinds=("disk",)),
    )
    target: str | None = field(default=None, metadata=_meta(kinds=("function",)))
    # The check's own limit; the shorter of this and the check's `timeout` applies.
    timeout: float | None = field(default=None, metadata=POSITIVE_DURATION)


@dataclass(frozen=True, kw_only=True)
class HealthCheckSettings:
    name: str
    check: HealthCheckTargetSettings
    interval: float = field(default=10.0, metadata=POSITIVE_DURATION)
    timeout: float = field(default=5.0, metadata=POSITIVE_DURATION)
    unhealthy_threshold: int = field(default=3, metadata=POSITIVE)
    healthy_threshold: int = field(default=1, metadata=POSITIVE)
    # Only critical checks decide readiness; the others are reported (and logged) only.
    critical: bool = True


@dataclass(frozen=True, kw_only=True)
class HealthSettings:
    checks: tuple[HealthCheckSettings, ...] = ()
    readiness_endpoint: str = field(default="/ready", metadata=URL_PATH)
    liveness_endpoint: str = field(default="/health", metadata=URL_PATH)
    # Under ASGI: /health answers 503 while the event loop runs timers later than this.
    max_event_loop_lag: float | None = field(default=None, metadata=POSITIVE_DURATION)
