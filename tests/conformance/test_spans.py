"""The server span every adapter records for each shared request: name, attributes, status."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ._adapters import (
    CALL_IDS,
    CALLS,
    FAILURE,
    REDACTED_QUERY,
    TRACE_ID,
    UNMATCHED,
    USER_AGENT,
    Call,
    Recording,
)
from ._expectations import ALLOWED_SPAN_KEY_DIFFERENCES, known_drift


def test_one_server_span_per_request(recording: Recording) -> None:
    """The adapter records exactly one SERVER span per request, and nothing else."""
    assert len(recording.spans) == len(CALLS)
    assert {span.kind for span in recording.spans} == {SpanKind.SERVER}
    assert {call.key: len(recording.spans_for(call)) for call in CALLS} == dict.fromkeys(
        CALL_IDS, 1
    )


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_span_continues_the_callers_trace(recording: Recording, call: Call) -> None:
    """The span is a child of the span named by the request's traceparent, in its trace."""
    span = recording.span_for(call)
    assert span.parent is not None
    assert span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == call.parent_span_id
    assert f"{span.context.trace_id:032x}" == TRACE_ID


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_span_name(request: pytest.FixtureRequest, recording: Recording, call: Call) -> None:
    """The span is named ``"{METHOD} {route template}"``, or just the method when unmatched."""
    known_drift(request, recording.name, call, "span-name")
    route = recording.adapter.route(call)
    expected = call.method if route == UNMATCHED else f"{call.method} {route}"
    assert recording.span_for(call).name == expected


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_span_attribute_keys_match_the_reference(
    request: pytest.FixtureRequest, recording: Recording, reference: Recording, call: Call
) -> None:
    """The span has the same attribute keys as the reference adapter's span for this request."""
    known_drift(request, recording.name, call, "span-attribute-keys")
    allowed = ALLOWED_SPAN_KEY_DIFFERENCES.get(recording.name, frozenset())
    mine = set(recording.span_for(call).attributes or {}) - allowed
    theirs = set(reference.span_for(call).attributes or {}) - allowed
    assert mine == theirs, (
        f"{call.key}: only in {recording.name}: {sorted(mine - theirs)}; "
        f"only in {reference.name}: {sorted(theirs - mine)}"
    )


def expected_attributes(recording: Recording, call: Call) -> dict[str, Any]:
    """Every attribute the span of ``call`` must have, with its value."""
    route = recording.adapter.route(call)
    expected: dict[str, Any] = {
        "http.request.method": call.method,
        "url.path": call.path,
        "url.scheme": "http",
        "url.query": REDACTED_QUERY,
        "http.request.header.x-request-id": call.request_id,
        "server.address": "testserver",
        "client.address": "127.0.0.1",
        "user_agent.original": USER_AGENT,
        "network.protocol.version": "1.1",
        "http.response.status_code": call.status,
    }
    if route != UNMATCHED:
        expected["http.route"] = route
    if call.status >= 500:
        # The unhandled exception's type; the bare status when the app answered a 5xx itself.
        expected["error.type"] = "RuntimeError" if call.key == "fail" else str(call.status)
    return expected


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_span_attributes(request: pytest.FixtureRequest, recording: Recording, call: Call) -> None:
    """The span carries the HTTP semantic-convention attributes with the request's values,
    the secret query parameter redacted."""
    known_drift(request, recording.name, call, "span-attributes")
    assert dict(recording.span_for(call).attributes or {}) == expected_attributes(recording, call)


def outcome(span: ReadableSpan) -> dict[str, Any]:
    """The span's status and events, without the stack trace (it names each framework's code)."""
    return {
        "status": span.status.status_code,
        "description": span.status.description,
        "events": [
            (event.name, {k: v for k, v in (event.attributes or {}).items() if "stack" not in k})
            for event in span.events
        ],
    }


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_span_status_and_events(
    request: pytest.FixtureRequest, recording: Recording, reference: Recording, call: Call
) -> None:
    """An unhandled exception marks the span ERROR with an ``exception`` event, a 5xx the app
    answered marks it ERROR alone, and every other request leaves it unset without events."""
    known_drift(request, recording.name, call, "span-status")
    span = recording.span_for(call)
    mine = outcome(span)
    if call.key == "fail":
        assert (mine["status"], mine["description"]) == (
            StatusCode.ERROR,
            f"RuntimeError: {FAILURE}",
        )
        ((name, attributes),) = mine["events"]
        assert name == "exception"
        assert (attributes["exception.type"], attributes["exception.message"]) == (
            "RuntimeError",
            FAILURE,
        )
        assert "exception.stacktrace" in (span.events[0].attributes or {})
    else:
        status = StatusCode.ERROR if call.status >= 500 else StatusCode.UNSET
        assert mine == {"status": status, "description": None, "events": []}
    theirs = outcome(reference.span_for(call))
    assert mine == theirs, f"{call.key}: {recording.name}: {mine}; {reference.name}: {theirs}"
