"""The ``/health`` and ``/ready`` answers exactly, their metrics and their log lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telemetry_web import ConfigError, Telemetry
from telemetry_web.health import QUERY_KEY
from telemetry_web.health._report import CheckResult
from telemetry_web.health._state import ManualClock
from telemetry_web.testing import CapturedTelemetry

from .conftest import MakeCaptured

JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
T0 = "2023-11-14T22:13:20.000Z"  # ManualClock's start, 1_700_000_000
T1 = "2023-11-14T22:13:21.000Z"


class Switch:
    """A check whose answer the test sets."""

    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy

    def __call__(self) -> None:
        if not self.healthy:
            raise ConnectionError("primary is down")


def answer(response: tuple[int, list[tuple[str, str]], bytes]) -> tuple[int, Any]:
    status, headers, body = response
    assert headers == JSON_HEADERS
    return status, json.loads(body)


def ready(telemetry: Telemetry, **request: str) -> tuple[int, Any]:
    return answer(telemetry.endpoints["/ready"](request))


def health_events(captured: CapturedTelemetry) -> list[dict[str, Any]]:
    return [e for e in captured.logs() if e.get("logger") == "telemetry_web.health"]


PENDING = {
    "status": "pending",
    "critical": True,
    "last_error": None,
    "last_duration_ms": None,
    "consecutive_successes": 0,
    "consecutive_failures": 0,
    "last_change": None,
}


def test_ready_without_checks(telemetry: Telemetry) -> None:
    """With no checks, a running process is ready."""
    assert ready(telemetry) == (200, {"status": "ready", "service": "shop", "checks": {}})


def test_not_ready_before_the_first_round(telemetry: Telemetry) -> None:
    """Registered checks that have not run yet keep the service unready."""
    telemetry.add_health_check("db", Switch())
    assert ready(telemetry) == (
        503,
        {"status": "not_ready", "service": "shop", "checks": {"db": PENDING}},
    )


async def test_ready_json_exactly(telemetry: Telemetry, clock: ManualClock) -> None:
    """After one round: every field of every check, critical or not, and the overall status."""
    telemetry.add_health_check("db", Switch(), unhealthy_threshold=1)
    telemetry.add_health_check("cache", Switch(healthy=False), critical=False)
    clock.advance(1)
    await telemetry.health.run_round()
    assert ready(telemetry) == (
        200,
        {
            "status": "ready",
            "service": "shop",
            "checks": {
                "cache": {
                    "status": "unhealthy",
                    "critical": False,
                    "last_error": "ConnectionError: primary is down",
                    "last_duration_ms": 0.0,
                    "consecutive_successes": 0,
                    "consecutive_failures": 1,
                    "last_change": T1,
                },
                "db": {
                    "status": "healthy",
                    "critical": True,
                    "last_error": None,
                    "last_duration_ms": 0.0,
                    "consecutive_successes": 1,
                    "consecutive_failures": 0,
                    "last_change": T1,
                },
            },
        },
    )


async def test_critical_failure_makes_it_not_ready(telemetry: Telemetry) -> None:
    """One unhealthy critical check is a 503 naming it."""
    db = Switch()
    telemetry.add_health_check("db", db, unhealthy_threshold=1)
    await telemetry.health.run_round()
    assert ready(telemetry)[0] == 200
    db.healthy = False
    await telemetry.health.run_round()
    status, body = ready(telemetry)
    assert (status, body["status"], body["checks"]["db"]["status"]) == (
        503,
        "not_ready",
        "unhealthy",
    )


async def test_verbose_adds_target_options_and_output(
    make_captured: MakeCaptured, clock: ManualClock
) -> None:
    """?verbose adds kind, target, options, the last run and the output, per check."""
    captured = make_captured(
        {"health": {"checks": [{"name": "echo", "check": {"script": {"command": "echo hi"}},
                                "interval": "30s", "timeout": "2s", "critical": False}]}}
    )  # fmt: skip
    clock.advance(1)
    await captured.telemetry.health.run_round()
    status, body = ready(captured.telemetry, **{QUERY_KEY: "verbose"})
    assert status == 200
    assert body["checks"]["echo"] == {
        "status": "healthy",
        "critical": False,
        "last_error": None,
        "last_duration_ms": 0.0,
        "consecutive_successes": 1,
        "consecutive_failures": 0,
        "last_change": T1,
        "kind": "script",
        "target": "echo hi",
        "interval_s": 30.0,
        "timeout_s": 2.0,
        "unhealthy_threshold": 3,
        "healthy_threshold": 1,
        "last_run": T1,
        "last_output": "hi",
    }
    assert ready(captured.telemetry, **{QUERY_KEY: "verbose=0"})[1] == {
        **body,
        "checks": {"echo": {k: v for k, v in body["checks"]["echo"].items()
                            if k in ("status", "critical", "last_error", "last_duration_ms",
                                     "consecutive_successes", "consecutive_failures",
                                     "last_change")}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), ("Bearer scrape-me", 200)],
)
def test_verbose_is_behind_the_metrics_token(
    make_captured: MakeCaptured, authorization: str | None, status: int
) -> None:
    """With a /metrics bearer token, ?verbose needs it; the plain answer stays open."""
    captured = make_captured(
        {"metrics": {"collectors": {"prometheus": {"bearer_token": "scrape-me"}}}}
    )
    endpoint = captured.telemetry.endpoints["/ready"]
    request = {QUERY_KEY: "verbose=1"}
    if authorization is not None:
        request["authorization"] = authorization
    got, headers, _ = endpoint(request)
    assert got == status
    if status == 401:
        assert ("WWW-Authenticate", "Bearer") in headers
    assert endpoint({})[0] == 200


def test_liveness_json_exactly(telemetry: Telemetry, clock: ManualClock) -> None:
    """/health: 200 with the service and its uptime, whatever the checks say."""
    telemetry.add_health_check("db", Switch(healthy=False))
    clock.advance(12.3456)
    assert answer(telemetry.endpoints["/health"]({})) == (
        200,
        {"status": "ok", "service": "shop", "uptime_s": 12.346},
    )


def test_legacy_sources_are_reported(telemetry: Telemetry) -> None:
    """add_source results (state checked elsewhere) join the report and decide readiness."""
    telemetry.health.add_source("replica", lambda: CheckResult(healthy=False, error="lagging"))
    status, body = ready(telemetry)
    assert status == 503
    assert body["checks"]["replica"] == {
        "status": "unhealthy",
        "critical": True,
        "last_error": "lagging",
        "last_duration_ms": None,
        "consecutive_successes": None,
        "consecutive_failures": None,
        "last_change": None,
    }


# --- metrics -----------------------------------------------------------------------------------


async def test_status_and_duration_metrics(make_captured: MakeCaptured) -> None:
    """health_check_status is 0 until healthy, then 1; each run is observed in the histogram."""
    captured = make_captured()
    db = Switch()
    captured.telemetry.add_health_check("db", db, unhealthy_threshold=1)
    assert captured.sample("health_check_status", check="db") == 0
    await captured.telemetry.health.run_round()
    assert captured.sample("health_check_status", check="db") == 1
    db.healthy = False
    await captured.telemetry.health.run_round()
    assert captured.sample("health_check_status", check="db") == 0
    assert captured.sample("health_check_duration_seconds_count", check="db") == 2
    text = captured.metrics_text()
    assert 'health_check_status{check="db",environment="development",service="shop"}' in text


# --- logs --------------------------------------------------------------------------------------


async def test_each_state_change_is_logged_once_with_its_cause(
    make_captured: MakeCaptured,
) -> None:
    """A line per change (first result, failure, recovery), none for unchanged results."""
    captured = make_captured()
    db = Switch()
    captured.telemetry.add_health_check("db", db, unhealthy_threshold=2)
    health = captured.telemetry.health
    await health.run_round()
    db.healthy = False
    await health.run_round()
    await health.run_round()
    await health.run_round()
    db.healthy = True
    await health.run_round()
    lines = [
        {k: e[k] for k in ("event", "level", "check", "status", "previous", "cause", "critical")}
        for e in health_events(captured)
    ]
    assert lines == [
        {"event": "health check healthy", "level": "info", "check": "db", "status": "healthy",
         "previous": "pending", "cause": "passed", "critical": True},
        {"event": "health check unhealthy", "level": "warning", "check": "db",
         "status": "unhealthy", "previous": "healthy",
         "cause": "2 consecutive failures, the last: ConnectionError: primary is down",
         "critical": True},
        {"event": "health check healthy", "level": "info", "check": "db", "status": "healthy",
         "previous": "unhealthy", "cause": "passed", "critical": True},
    ]  # fmt: skip


async def test_failing_probe_is_logged_once_per_change(make_captured: MakeCaptured) -> None:
    """503 answers are logged on the first one only, recovery once, the next outage again."""
    captured = make_captured()
    db = Switch()
    telemetry = captured.telemetry
    telemetry.add_health_check("db", db, unhealthy_threshold=1)
    for _ in range(3):
        assert ready(telemetry)[0] == 503  # pending
    await telemetry.health.run_round()
    for _ in range(3):
        assert ready(telemetry)[0] == 200
    db.healthy = False
    await telemetry.health.run_round()
    for _ in range(3):
        assert ready(telemetry)[0] == 503
    probes = [
        (e["event"], e["level"], e["status"], e.get("checks"))
        for e in health_events(captured)
        if e["event"].startswith("readiness")
    ]
    assert probes == [
        ("readiness probe failed", "warning", 503, ["db"]),
        ("readiness probe passed", "info", 200, None),
        ("readiness probe failed", "warning", 503, ["db"]),
    ]


# --- configuration -----------------------------------------------------------------------------


async def test_reconfiguring_replaces_configured_checks_and_keeps_code_ones(
    make_captured: MakeCaptured, listening_port: int
) -> None:
    """configure_health swaps the configured checks; checks registered in code stay."""
    tcp = {"tcp": {"host": "127.0.0.1", "port": listening_port}}
    captured = make_captured({"health": {"checks": [{"name": "old", "check": tcp}]}})
    telemetry = captured.telemetry
    telemetry.add_health_check("mine", Switch())
    telemetry.configure_health({"checks": [{"name": "new", "check": tcp}]})
    assert telemetry.health.names() == ["mine", "new"]


def test_bad_check_configuration_names_its_key_path() -> None:
    """Missing and misplaced keys of the new kinds are reported with their paths."""
    with pytest.raises(ConfigError) as info:
        Telemetry(
            {"health": {"checks": [
                {"name": "d", "check": {"disk": {"path": "/"}}},
                {"name": "f", "check": {"function": {"target": "no_colon"}}},
                {"name": "r", "check": {"redis": {"path": "/"}}},
                {"name": "i", "check": {"tcp": {"host": "h", "port": 1}}, "interval": 0},
            ]}},
            use_env=False,
        )  # fmt: skip
    assert info.value.problems == [
        "health.checks[0].check.min_free: required for type 'disk' (or min_free_percent)",
        "health.checks[1].check.target: expected 'module:function', got 'no_colon'",
        "health.checks[2].check.path: not used by type 'redis' (used by 'disk')",
        "health.checks[3].interval: expected a positive duration such as '500ms' or '10s', got 0",
    ]


def test_unimportable_function_is_a_configuration_error(make_captured: MakeCaptured) -> None:
    """A function target that cannot be imported stops configuration and keeps the settings."""
    captured = make_captured()
    before = captured.telemetry.settings
    with pytest.raises(ConfigError) as info:
        captured.telemetry.configure_health(
            {"checks": [{"name": "f", "check": {"function": {"target": "nowhere_xyz:f"}}}]}
        )
    assert info.value.problems == [
        "health.checks[0].check.target: ModuleNotFoundError: No module named 'nowhere_xyz'"
    ]
    assert captured.telemetry.settings is before
