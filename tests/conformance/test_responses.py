"""What the client receives from every adapter for the shared requests."""

from __future__ import annotations

import json

import pytest

from ._adapters import CALL_IDS, CALLS, ORDER, USER_ID, Call, Recording
from ._expectations import RESPONSE_WITHOUT_REQUEST_ID


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_status(recording: Recording, call: Call) -> None:
    """Each request is answered with the status its endpoint is written to return."""
    assert recording.answers[call.key].status == call.status


def test_json_bodies(recording: Recording) -> None:
    """The JSON endpoints answer the same data, read from the path and from the request body."""
    assert json.loads(recording.answers["user"].body) == {"id": USER_ID}
    assert json.loads(recording.answers["order"].body) == {"order": ORDER}


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_request_id_is_echoed(recording: Recording, call: Call) -> None:
    """The X-Request-ID the client sent comes back on the response, error responses included."""
    header = recording.answers[call.key].headers.get("x-request-id")
    if (recording.name, call.key) in RESPONSE_WITHOUT_REQUEST_ID:
        assert header in (None, call.request_id)
    else:
        assert header == call.request_id
