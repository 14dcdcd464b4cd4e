"""The ``/health`` and ``/ready`` answers, rendered the same way by every adapter.

``/ready``::

    {"status": "ready" | "not_ready", "service": "orders",
     "checks": {"db": {"status": "healthy" | "unhealthy" | "pending", "critical": true,
                       "last_error": null, "last_duration_ms": 1.234,
                       "consecutive_successes": 4, "consecutive_failures": 0,
                       "last_change": "2024-05-01T12:00:00.000Z"}}}

``?verbose`` adds, per check, ``kind``, ``target``, ``interval_s``, ``timeout_s``, both
thresholds, ``last_run`` and ``last_output`` (a script's output, an HTTP error body).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from ._runner import Entry

__all__ = ["QUERY_KEY", "CheckResult", "Report", "Response", "SourceResult"]

Response = tuple[int, list[tuple[str, str]], bytes]
# Where adapters put the query string in the mapping a built-in endpoint receives (a name no
# header can have, like HTTP/2's pseudo-headers).
QUERY_KEY = ":query"
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_UNAUTHORIZED: Response = (
    401,
    [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
    b"Unauthorized\n",
)


@dataclass(frozen=True)
class CheckResult:
    """The latest known state of something checked elsewhere (see ``Health.add_source``)."""

    healthy: bool
    critical: bool = True
    error: str | None = None
    duration_ms: float | None = None


SourceResult = CheckResult


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def wants_verbose(query: str) -> bool:
    values = parse_qs(query, keep_blank_values=True).get("verbose")
    return values is not None and values[-1].lower() not in ("0", "false", "no", "off")


class Report:
    def __init__(self, service: str) -> None:
        self.service = service

    def ready(
        self, entries: Mapping[str, Entry], sources: Mapping[str, Callable[[], CheckResult]]
    ) -> bool:
        return not self._failing(entries, self._read_sources(sources))

    def liveness(self, uptime: float, lag: float | None, lag_limit: float | None) -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "service": self.service,
            "uptime_s": round(uptime, 3),
        }
        status = 200
        if lag is not None and lag_limit is not None:
            body["event_loop_lag_ms"] = _ms(lag)
            body["event_loop_lag_limit_ms"] = _ms(lag_limit)
            if lag > lag_limit:
                body["status"] = "event_loop_lagging"
                status = 503
        return status, list(_JSON), json.dumps(body).encode()

    def readiness(
        self,
        entries: Mapping[str, Entry],
        sources: Mapping[str, Callable[[], CheckResult]],
        request: Mapping[str, str],
        token: str | None,
    ) -> tuple[Response, bool | None, list[str]]:
        """(response, ready or None when refused, the critical checks that are not healthy)."""
        verbose = wants_verbose(request.get(QUERY_KEY, ""))
        if verbose and token and not _authorized(request.get("authorization"), token):
            return _UNAUTHORIZED, None, []
        results = self._read_sources(sources)
        checks: dict[str, dict[str, Any]] = {}
        for name, entry in entries.items():
            checks[name] = self._check(entry, verbose)
        for name, result in results.items():
            checks[name] = _source(result, verbose)
        failing = self._failing(entries, results)
        body = {
            "status": "not_ready" if failing else "ready",
            "service": self.service,
            "checks": dict(sorted(checks.items())),
        }
        status = 503 if failing else 200
        return (status, list(_JSON), json.dumps(body).encode()), not failing, failing

    @staticmethod
    def _failing(entries: Mapping[str, Entry], results: Mapping[str, CheckResult]) -> list[str]:
        failing = [
            name
            for name, entry in entries.items()
            if entry.options.critical and entry.snapshot.status != "healthy"
        ]
        failing += [name for name, r in results.items() if r.critical and not r.healthy]
        return sorted(failing)

    @staticmethod
    def _read_sources(
        sources: Mapping[str, Callable[[], CheckResult]],
    ) -> dict[str, CheckResult]:
        results: dict[str, CheckResult] = {}
        for name, source in sources.items():
            try:
                results[name] = source()
            except Exception as exc:  # a broken source reports itself, it does not break probes
                results[name] = CheckResult(healthy=False, error=f"{type(exc).__name__}: {exc}")
        return results

    @staticmethod
    def _check(entry: Entry, verbose: bool) -> dict[str, Any]:
        s = entry.snapshot
        report: dict[str, Any] = {
            "status": s.status,
            "critical": entry.options.critical,
            "last_error": s.last_error,
            "last_duration_ms": _ms(s.last_duration),
            "consecutive_successes": s.consecutive_successes,
            "consecutive_failures": s.consecutive_failures,
            "last_change": iso(s.last_change),
        }
        if verbose:
            o = entry.options
            report.update(
                kind=entry.check.kind,
                target=_describe(entry),
                interval_s=o.interval,
                timeout_s=o.timeout,
                unhealthy_threshold=o.unhealthy_threshold,
                healthy_threshold=o.healthy_threshold,
                last_run=iso(s.last_run),
                last_output=s.last_output,
            )
        return report


def _describe(entry: Entry) -> str:
    try:
        return entry.check.describe()
    except Exception:
        return entry.check.kind


def _source(result: CheckResult, verbose: bool) -> dict[str, Any]:
    report: dict[str, Any] = {
        "status": "healthy" if result.healthy else "unhealthy",
        "critical": result.critical,
        "last_error": result.error,
        "last_duration_ms": result.duration_ms,
        "consecutive_successes": None,
        "consecutive_failures": None,
        "last_change": None,
    }
    if verbose:
        report["kind"] = "source"
    return report


def _authorized(header: str | None, token: str) -> bool:
    expected = f"Bearer {token}".encode()
    return header is not None and hmac.compare_digest(header.encode(), expected)
