"""The request log line every adapter writes for each shared request: keys, values, ids."""

from __future__ import annotations

from typing import Any

import pytest

from ._adapters import (
    CALL_IDS,
    CALLS,
    ENVIRONMENT,
    FAILURE,
    REDACTED_QUERY,
    SERVICE,
    USER_AGENT,
    Call,
    Recording,
)
from ._expectations import ALLOWED_LOG_KEY_DIFFERENCES, known_drift


def level(status: int) -> str:
    return "error" if status >= 500 else "warning" if status >= 400 else "info"


def test_one_request_line_per_request(recording: Recording) -> None:
    """The adapter writes exactly one request line per request."""
    ids = sorted(str(line.get("request_id")) for line in recording.request_lines())
    assert ids == sorted(call.request_id for call in CALLS)


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_log_line_keys_match_the_reference(
    request: pytest.FixtureRequest, recording: Recording, reference: Recording, call: Call
) -> None:
    """The request line has the same keys as the reference adapter's line for this request."""
    known_drift(request, recording.name, call, "log-keys")
    allowed = ALLOWED_LOG_KEY_DIFFERENCES.get(recording.name, frozenset())
    mine = set(recording.line_for(call)) - allowed
    theirs = set(reference.line_for(call)) - allowed
    assert mine == theirs, (
        f"{call.key}: only in {recording.name}: {sorted(mine - theirs)}; "
        f"only in {reference.name}: {sorted(theirs - mine)}"
    )


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_log_line_fields(request: pytest.FixtureRequest, recording: Recording, call: Call) -> None:
    """The request line carries the request's method, route, path, redacted query, status,
    client, user agent and request id, at the level its status calls for."""
    known_drift(request, recording.name, call, "log-fields")
    line = recording.line_for(call)
    varying = {"timestamp", "duration_ms", "trace_id", "span_id", "exception"}
    expected: dict[str, Any] = {
        "level": level(call.status),
        "event": "request",
        "logger": "telemetry_web.request",
        "service": SERVICE,
        "environment": ENVIRONMENT,
        "method": call.method,
        "route": recording.adapter.route(call),
        "path": call.path,
        "query": REDACTED_QUERY,
        "status": call.status,
        "client": "127.0.0.1",
        "user_agent": USER_AGENT,
        "request_id": call.request_id,
    }
    assert {k: v for k, v in line.items() if k not in varying} == expected
    assert isinstance(line["timestamp"], str)
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_log_line_is_correlated_with_the_span(recording: Recording, call: Call) -> None:
    """The request line's trace_id and span_id are those of the request's span."""
    line, span = recording.line_for(call), recording.span_for(call)
    assert line["trace_id"] == f"{span.context.trace_id:032x}"
    assert line["span_id"] == f"{span.context.span_id:016x}"


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_log_line_exception(
    request: pytest.FixtureRequest, recording: Recording, reference: Recording, call: Call
) -> None:
    """Only the request whose exception went unhandled has an ``exception`` field, shaped as
    the reference's."""
    known_drift(request, recording.name, call, "log-exception")
    line = recording.line_for(call)
    if call.key != "fail":
        assert "exception" not in line, line.get("exception")
        return
    exception = line["exception"]
    assert {k: exception[k] for k in ("type", "message")} == {
        "type": "RuntimeError",
        "message": FAILURE,
    }
    assert set(exception) == set(reference.line_for(call)["exception"])
