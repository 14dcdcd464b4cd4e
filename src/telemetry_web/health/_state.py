"""One check's state: results in, thresholded status out, as immutable snapshots.

A check starts ``pending`` (readiness waits for it). Its first result decides its first status;
after that it takes ``unhealthy_threshold`` consecutive failures to turn ``unhealthy`` and
``healthy_threshold`` consecutive successes to turn ``healthy`` again. :func:`advance` is pure:
the runner replaces a check's :class:`Snapshot` with the one it returns, so a probe reading the
state never sees half an update and never takes a lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

__all__ = [
    "CheckOptions",
    "Clock",
    "ManualClock",
    "Outcome",
    "Snapshot",
    "Status",
    "SystemClock",
    "Transition",
    "advance",
]

Status = Literal["pending", "healthy", "unhealthy"]


class Clock(Protocol):
    """Where a health check's times come from (replaced by :class:`ManualClock` in tests)."""

    def time(self) -> float:
        """Wall-clock time, seconds since the epoch (``last_change``, ``last_run``)."""

    def monotonic(self) -> float:
        """A clock for durations (``last_duration_ms``, uptime)."""


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told: transitions and reports become exact in tests.

    Example::

        clock = ManualClock()
        telemetry.health.use_clock(clock)
        clock.advance(10)
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._monotonic = 0.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._monotonic += seconds


@dataclass(frozen=True)
class Outcome:
    """The result of one run of a check.

    Attributes:
        ok: whether the dependency answered as expected.
        error: why not (``ConnectionRefusedError: [Errno 111] Connection refused``).
        output: what the check printed or received, truncated (scripts, HTTP bodies).
    """

    ok: bool
    error: str | None = None
    output: str | None = None


@dataclass(frozen=True, kw_only=True)
class CheckOptions:
    """How often a check runs, how long it may take and how its results are counted."""

    critical: bool = True
    interval: float = 10.0
    timeout: float = 5.0
    unhealthy_threshold: int = 3
    healthy_threshold: int = 1

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(
                f"interval and timeout must be positive, got {self.interval} and {self.timeout}"
            )
        if self.unhealthy_threshold < 1 or self.healthy_threshold < 1:
            raise ValueError(
                "unhealthy_threshold and healthy_threshold must be at least 1, got "
                f"{self.unhealthy_threshold} and {self.healthy_threshold}"
            )


@dataclass(frozen=True)
class Snapshot:
    """Everything known about one check at one moment."""

    status: Status = "pending"
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None  # the latest failure's, kept after a recovery
    last_output: str | None = None
    last_duration: float | None = None  # seconds
    last_change: float | None = None  # wall time of the last status change
    last_run: float | None = None  # wall time the latest run ended
    runs: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Transition:
    """A status change, with the reason it happened (logged once)."""

    previous: Status
    current: Status
    cause: str


def advance(
    snapshot: Snapshot, outcome: Outcome, duration: float, now: float, options: CheckOptions
) -> tuple[Snapshot, Transition | None]:
    """The snapshot after one more result, and the transition it caused, if any."""
    if outcome.ok:
        successes, failures = snapshot.consecutive_successes + 1, 0
    else:
        successes, failures = 0, snapshot.consecutive_failures + 1
    status = snapshot.status
    if status == "pending":
        status = "healthy" if outcome.ok else "unhealthy"
    elif status == "healthy" and failures >= options.unhealthy_threshold:
        status = "unhealthy"
    elif status == "unhealthy" and successes >= options.healthy_threshold:
        status = "healthy"
    updated = replace(
        snapshot,
        status=status,
        consecutive_successes=successes,
        consecutive_failures=failures,
        last_error=snapshot.last_error if outcome.ok else outcome.error,
        last_output=outcome.output,
        last_duration=duration,
        last_run=now,
        runs=snapshot.runs + 1,
    )
    if status == snapshot.status:
        return updated, None
    updated = replace(updated, last_change=now)
    return updated, Transition(snapshot.status, status, _cause(outcome, successes, failures))


def _cause(outcome: Outcome, successes: int, failures: int) -> str:
    if not outcome.ok:
        error = outcome.error or "failed"
        return error if failures == 1 else f"{failures} consecutive failures, the last: {error}"
    return "passed" if successes == 1 else f"{successes} consecutive successes"
