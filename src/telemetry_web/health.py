"""Liveness and readiness reports, rendered the same way by every adapter.

Readiness is decided by the registered checks; with none, a running process is ready. Background
dependency checks with thresholds arrive with the ``health.checks`` configuration.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CheckResult", "Health"]

Response = tuple[int, list[tuple[str, str]], bytes]
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


@dataclass(frozen=True)
class CheckResult:
    healthy: bool
    critical: bool = True
    error: str | None = None
    duration_ms: float | None = None


class Health:
    def __init__(self, service: str) -> None:
        self.service = service
        self._started = time.time()
        self._sources: dict[str, Callable[[], CheckResult]] = {}
        self._lock = threading.Lock()

    def add_source(self, name: str, source: Callable[[], CheckResult]) -> None:
        """Register a function returning the *latest known* state of one check (never blocking)."""
        with self._lock:
            self._sources[name] = source

    def liveness(self) -> Response:
        body = {
            "status": "ok",
            "service": self.service,
            "uptime_s": round(time.time() - self._started, 3),
        }
        return 200, list(_JSON), json.dumps(body).encode()

    def readiness(self) -> Response:
        with self._lock:
            sources = dict(self._sources)
        checks: dict[str, dict[str, object]] = {}
        ready = True
        for name, source in sorted(sources.items()):
            try:
                result = source()
            except Exception as exc:  # a broken check reports itself, it does not break the probe
                result = CheckResult(healthy=False, error=f"{type(exc).__name__}: {exc}")
            checks[name] = {
                "status": "healthy" if result.healthy else "unhealthy",
                "critical": result.critical,
                "error": result.error,
                "duration_ms": result.duration_ms,
            }
            if result.critical and not result.healthy:
                ready = False
        body = {
            "status": "ready" if ready else "not_ready",
            "service": self.service,
            "checks": checks,
        }
        return (200 if ready else 503), list(_JSON), json.dumps(body).encode()
