"""The request log line's fast path writes what the general path writes.

``logging/_request_line.py`` finishes and renders the lifecycle's request records without the
general finish, redaction walk and renderer, and builds their dicts only for sinks that read
events: checked here against that general path on random request events made of the characters
that matter, on values redaction must change (which leave the fast path), on configurations
that must not take it, through the batch sinks read, and through a real request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest

from telemetry_web.logging._pipeline import LogPipeline, estimate_event_bytes
from telemetry_web.logging._processors import Redactor, add_fields, finish_event
from telemetry_web.logging._request_line import RequestLines, RequestRecord, request_event
from telemetry_web.logging._sinks import EventBatch, json_lines, render_json

STATIC = {"service": "shop", "environment": "prod"}
ALPHABET = ['"', "\\", ",", ":", "é", "𝄞", "\u2028", "\x00", "\x1f", "\n", "/", "a", "Z", "7", " "]


def random_request(
    rng: random.Random, static: dict[str, Any] = STATIC
) -> tuple[RequestRecord, dict[str, Any]]:
    """A random request line, as the lifecycle queues it (a record) and as the general path
    sees it (the event dict, built here independently)."""

    def text(low: int = 0) -> str:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, 12)))

    event: dict[str, Any] = {
        "timestamp": time.time() - rng.random() * 1e6,
        "level": rng.choice(["info", "warning", "error"]),
        "event": "request",
        "logger": "telemetry_web.request",
        **static,
        "method": rng.choice(["GET", "POST", "PURGE", text(1)]),
        "route": rng.choice(["/api/users/{user_id}", "<unmatched>", text(1)]),
        "path": "/" + text(),
        "status": rng.choice([200, 204, 404, 500, 599]),
        "duration_ms": round(rng.random() * rng.choice([1, 1000, 1e6]), 3),
        "client": rng.choice([None, "127.0.0.1", "::1", text()]),
        "user_agent": rng.choice([None, "curl/8.5.0", text()]),
        "request_id": f"{rng.getrandbits(128):032x}",
    }
    if rng.random() < 0.5:
        event["query"] = "q=" + text()
    if rng.random() < 0.7:
        event["trace_id"] = f"{rng.getrandbits(128):032x}"
        event["span_id"] = f"{rng.getrandbits(64):016x}"
    return record_of(event), event


def record_of(event: dict[str, Any]) -> RequestRecord:
    keys = ("timestamp", "level", "method", "route", "path", "status", "duration_ms", "client")
    tail = ("user_agent", "request_id", "query", "trace_id", "span_id")
    return tuple(event.get(key) for key in (*keys, *tail))


def general_line(event: dict[str, Any], static: dict[str, Any] = STATIC) -> str:
    return render_json(Redactor()(finish_event(dict(event), static)))


def test_random_request_events_render_as_the_general_path_does() -> None:
    rng = random.Random(1606)
    lines = RequestLines.for_pipeline([Redactor()], STATIC)
    assert lines is not None
    taken = 0
    for _ in range(5000):
        record, event = random_request(rng)
        expected = general_line(event)
        finished = finish_event(dict(event), STATIC)
        # The general path's own input, from the record (the writer's fallback).
        assert list(request_event(record, STATIC).items()) == list(event.items())
        stamp = lines.finish(record)
        if stamp is not None:
            taken += 1
            assert lines.render(record, stamp) == expected
            # The dict sinks read: the same as the general path's, key order included.
            assert list(lines.event(record, stamp).items()) == list(finished.items())
    assert taken > 4000  # random text rarely looks like a secret


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/pay/4111111111111111", None),  # a card number
        ("/ok", "password=hunter2"),
        ("/ok", "note=Bearer abcdefghijklmnop"),
    ],
)
def test_values_redaction_changes_leave_the_fast_path(path: str, query: str | None) -> None:
    lines = RequestLines.for_pipeline([Redactor()], STATIC)
    assert lines is not None
    _, event = random_request(random.Random(7))
    event["path"] = path
    event.pop("query", None)
    if query is not None:
        event["query"] = query
    assert lines.finish(record_of(event)) is None
    # ... and the general path scrubs them
    assert "4111111111111111" not in general_line(event)
    assert "hunter2" not in general_line(event)


def test_configurations_that_change_events_take_the_general_path() -> None:
    assert RequestLines.for_pipeline([Redactor(keys=["path"])], STATIC) is None
    assert RequestLines.for_pipeline([Redactor(patterns=[r"\d+"])], STATIC) is None
    assert RequestLines.for_pipeline([add_fields({"a": 1}), Redactor()], STATIC) is None
    assert RequestLines.for_pipeline([Redactor()], {"api_token": "x"}) is None
    assert RequestLines.for_pipeline([Redactor()], {"service": 3}) is None
    assert RequestLines.for_pipeline([Redactor()], {}) is not None


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.lines: list[str] = []

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        self.batches.append([dict(e) for e in events])
        self.lines += json_lines(events)


class Dropped:
    def labels(self, *_: str) -> Dropped:
        return self

    def inc(self, amount: float = 1) -> None:
        raise AssertionError("nothing may be dropped here")


def collecting_pipeline(sink: Collect) -> LogPipeline:
    return LogPipeline(
        sinks=[sink],
        processors=[Redactor()],
        static_fields=STATIC,
        max_queue=100,
        dropped=Dropped(),
    )


def test_pipeline_delivers_request_and_other_events_in_order() -> None:
    sink = Collect()
    pipeline = collecting_pipeline(sink)
    rng = random.Random(3)
    requests = [random_request(rng)[1] for _ in range(3)]
    other = {"timestamp": time.time(), "level": "info", "event": "paid", "order": 7}
    expected = [general_line(requests[0]), general_line(other), general_line(requests[1])]
    secret = dict(requests[2], path="/cards/4111111111111111")
    expected.append(general_line(secret))
    pipeline.submit_request(record_of(requests[0]), estimate_event_bytes(requests[0]))
    pipeline.submit(other)
    pipeline.submit_request(record_of(requests[1]), estimate_event_bytes(requests[1]))
    pipeline.submit_request(record_of(secret), estimate_event_bytes(secret))
    assert pipeline.flush()
    pipeline.shutdown()
    assert sink.lines == expected
    assert "4111111111111111" not in sink.lines[3]
    delivered = [e for batch in sink.batches for e in batch]
    assert [e["event"] for e in delivered] == ["request", "paid", "request", "request"]
    assert all(isinstance(e["timestamp"], str) for e in delivered)


def test_a_record_submitted_with_no_size_estimate_is_still_a_request_line() -> None:
    sink = Collect()
    pipeline = collecting_pipeline(sink)
    record, event = random_request(random.Random(5))
    pipeline.submit_request(record, 0)
    assert pipeline.flush()
    pipeline.shutdown()
    assert sink.lines == [general_line(event)]


def test_event_batch_reads_records_as_dicts_and_renders_them_from_the_record() -> None:
    lines = RequestLines.for_pipeline([Redactor()], STATIC)
    assert lines is not None
    record, event = random_request(random.Random(11))
    stamp = lines.finish(record)
    assert stamp is not None
    finished = finish_event(dict(event), STATIC)
    batch = EventBatch()
    batch.append({"event": "a"})
    batch.append_request(record, stamp, lines)
    batch.append({"event": "c"})
    assert len(batch) == 3
    assert json_lines(batch) == ['{"event": "a"}', general_line(event), '{"event": "c"}']
    assert batch[1] == finished
    assert batch[1] is batch[-2]  # built once
    assert list(batch) == [{"event": "a"}, finished, {"event": "c"}]
    assert batch[1:] == [finished, {"event": "c"}]
    with pytest.raises(IndexError):
        batch[3]
    # Lines come from the records even after their dicts were read (and are the same).
    assert EventBatch().json_lines() == []
    assert json_lines(batch) == ['{"event": "a"}', general_line(event), '{"event": "c"}']


def test_served_request_lines_and_their_queue_estimates() -> None:
    """Through the ASGI middleware: the line is the general path's, and the size the queue
    counts for it is what estimate_event_bytes makes of the event."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from telemetry_web import Telemetry, TelemetryMiddleware
    from tests.adapters._support import call_asgi

    sink = Collect()
    telemetry = Telemetry(
        service="shop",
        environment="prod",
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
        log_sinks=[sink],
        use_env=False,
        capture_stdlib_logging=False,
    )
    pipeline = telemetry.pipeline
    assert pipeline is not None
    submitted: list[tuple[dict[str, Any], int]] = []
    submit = pipeline.submit_request

    def spy(record: RequestRecord, estimate: int) -> None:
        submitted.append((request_event(record, STATIC), estimate))
        submit(record, estimate)

    pipeline.submit_request = spy  # type: ignore[method-assign]

    async def user(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/users/{id}", user)])
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)

    async def two_requests() -> None:
        ua = [(b"user-agent", b"t/1")]
        assert (await call_asgi(app, "/users/1", query_string=b"x=1", headers=ua)).status == 200
        assert (await call_asgi(app, "/users/2")).status == 200

    asyncio.run(two_requests())
    telemetry.flush()
    telemetry.shutdown()
    assert len(submitted) == 2
    for event, estimate in submitted:
        assert estimate == estimate_event_bytes(event)
    assert sink.lines == [general_line(event, STATIC) for event, _ in submitted]
    assert [e["route"] for e in sink.batches[0]] == ["/users/{id}", "/users/{id}"]
    assert sink.batches[0][0]["query"] == "x=1"
    assert sink.batches[0][0]["service"] == "shop"
