"""Threshold transitions, step by step, on a manual clock: no sleeps, every step asserted."""

from __future__ import annotations

import pytest

from telemetry_web import Telemetry
from telemetry_web.health import Outcome
from telemetry_web.health._state import CheckOptions, ManualClock, Snapshot, advance

PASS = Outcome(True)
FAIL = Outcome(False, "ConnectionRefusedError: [Errno 111] Connection refused")


def run(steps: list[Outcome], options: CheckOptions) -> list[tuple[str, int, int, bool]]:
    """(status, successes, failures, changed) after each outcome, one second apart."""
    snapshot, now = Snapshot(), 100.0
    trail: list[tuple[str, int, int, bool]] = []
    for outcome in steps:
        now += 1
        snapshot, change = advance(snapshot, outcome, 0.01, now, options)
        trail.append(
            (
                snapshot.status,
                snapshot.consecutive_successes,
                snapshot.consecutive_failures,
                change is not None,
            )
        )
    return trail


def test_first_result_decides_the_first_status() -> None:
    """A pending check becomes healthy or unhealthy on its very first result."""
    options = CheckOptions(unhealthy_threshold=3, healthy_threshold=3)
    assert run([PASS], options) == [("healthy", 1, 0, True)]
    assert run([FAIL], options) == [("unhealthy", 0, 1, True)]


def test_unhealthy_only_after_the_threshold_of_consecutive_failures() -> None:
    """With unhealthy_threshold=3 a healthy check stays healthy through two failures."""
    options = CheckOptions(unhealthy_threshold=3, healthy_threshold=1)
    assert run([PASS, FAIL, FAIL, FAIL, FAIL], options) == [
        ("healthy", 1, 0, True),
        ("healthy", 0, 1, False),
        ("healthy", 0, 2, False),
        ("unhealthy", 0, 3, True),
        ("unhealthy", 0, 4, False),
    ]


def test_a_success_resets_the_failure_count() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    options = CheckOptions(unhealthy_threshold=2, healthy_threshold=1)
    assert run([PASS, FAIL, PASS, FAIL, FAIL], options) == [
        ("healthy", 1, 0, True),
        ("healthy", 0, 1, False),
        ("healthy", 1, 0, False),
        ("healthy", 0, 1, False),
        ("unhealthy", 0, 2, True),
    ]


def test_recovery_needs_the_threshold_of_consecutive_successes() -> None:
    """With healthy_threshold=2 an unhealthy check recovers on its second success in a row."""
    options = CheckOptions(unhealthy_threshold=1, healthy_threshold=2)
    assert run([FAIL, PASS, FAIL, PASS, PASS, PASS], options) == [
        ("unhealthy", 0, 1, True),
        ("unhealthy", 1, 0, False),
        ("unhealthy", 0, 1, False),
        ("unhealthy", 1, 0, False),
        ("healthy", 2, 0, True),
        ("healthy", 3, 0, False),
    ]


def test_transition_names_its_cause() -> None:
    """The cause of a change is the error (with the failure count) or the success count."""
    options = CheckOptions(unhealthy_threshold=2, healthy_threshold=2)
    snapshot, change = advance(Snapshot(status="healthy"), FAIL, 0.1, 1.0, options)
    assert change is None
    snapshot, change = advance(snapshot, FAIL, 0.1, 2.0, options)
    assert change is not None
    assert (change.previous, change.current) == ("healthy", "unhealthy")
    assert change.cause == (
        "2 consecutive failures, the last: ConnectionRefusedError: [Errno 111] Connection refused"
    )
    snapshot, _ = advance(snapshot, PASS, 0.1, 3.0, options)
    snapshot, change = advance(snapshot, PASS, 0.1, 4.0, options)
    assert change is not None
    assert change.cause == "2 consecutive successes"
    assert snapshot.last_change == 4.0
    assert snapshot.last_error == FAIL.error  # kept after the recovery


def test_options_out_of_range_are_refused() -> None:
    """Thresholds below 1 and non-positive durations are errors, not silent defaults."""
    with pytest.raises(ValueError, match="at least 1"):
        CheckOptions(unhealthy_threshold=0)
    with pytest.raises(ValueError, match="positive"):
        CheckOptions(interval=0)


async def test_transitions_through_health_on_the_manual_clock(
    telemetry: Telemetry, clock: ManualClock
) -> None:
    """Each run_round is one step: status, counts and last_change follow the manual clock."""
    answers = iter([True, False, False, True, True])
    telemetry.health.add_check(
        "flaky", lambda: next(answers), unhealthy_threshold=2, healthy_threshold=2
    )
    health = telemetry.health
    assert health.snapshot("flaky").status == "pending"
    expected = [
        ("healthy", 1, 0, 1_700_000_001.0),
        ("healthy", 0, 1, 1_700_000_001.0),
        ("unhealthy", 0, 2, 1_700_000_003.0),
        ("unhealthy", 1, 0, 1_700_000_003.0),
        ("healthy", 2, 0, 1_700_000_005.0),
    ]
    for status, successes, failures, changed_at in expected:
        clock.advance(1)
        await health.run_round()
        s = health.snapshot("flaky")
        assert (s.status, s.consecutive_successes, s.consecutive_failures) == (
            status,
            successes,
            failures,
        )
        assert s.last_change == changed_at
        assert s.last_duration == 0.0  # the manual clock did not move during the run
