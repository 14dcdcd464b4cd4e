"""The Elasticsearch sink against a loopback HTTP receiver standing in for Elasticsearch's
``_bulk`` API (``_bulk_receiver.py``: it decodes the NDJSON bodies with the ``json`` module and
fails on purpose): the bulk format, batching, outages, drops, recovery."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.errors import ConfigError
from telemetry_web.logging import ElasticsearchSink

from ._bulk_receiver import BulkReceiver
from .conftest import SERVICE, MakeTelemetry, dropped


@pytest.fixture
def receiver() -> Iterator[BulkReceiver]:
    """A running loopback bulk receiver, stopped after the test."""
    server = BulkReceiver()
    server.start()
    yield server
    server.stop()
    assert server.problems == []


def es_config(url: str, **settings: Any) -> dict[str, Any]:
    return {"logging": {"request_log": False, "sinks": {"elasticsearch": {"url": url, **settings}}}}


def failure_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Log shipping failed: elasticsearch" in line]


def numbers(documents: list[tuple[str, dict[str, Any]]]) -> list[int]:
    return [document["n"] for _index, document in documents]


def test_bulk_format_fields_and_index_from_the_event_timestamp(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver
) -> None:
    """Each event is an index action plus its JSON document, in the index its own timestamp
    names, with ``@timestamp`` added and secrets redacted."""
    tel = make_telemetry(**es_config(receiver.url, index_pattern="app-%Y.%m.%d"))
    log = tel.get_logger("api")
    log.info("old", n=0, timestamp=1_700_000_000.25)  # 2023-11-14T22:13:20.250Z
    log.info("new", n=1, password="pw", user_id=42)
    tel.flush()
    (old_index, old), (new_index, new) = receiver.wait_for(2)
    assert old_index == "app-2023.11.14"
    assert old["@timestamp"] == old["timestamp"] == "2023-11-14T22:13:20.250Z"
    assert new_index == time.strftime("app-%Y.%m.%d", time.gmtime())
    assert {k: new[k] for k in ("level", "event", "logger", "service", "user_id", "password")} == {
        "level": "info",
        "event": "new",
        "logger": "api",
        "service": SERVICE,
        "user_id": 42,
        "password": "REDACTED",
    }
    assert receiver.requests[0].headers["Content-Type"] == "application/x-ndjson"


def test_batches_by_size_then_by_interval(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver
) -> None:
    """A full ``buffer_size`` is sent at once; the rest waits for ``flush_interval``."""
    tel = make_telemetry(**es_config(receiver.url, buffer_size=10, flush_interval="600ms"))
    log = tel.get_logger("batch")
    started = time.monotonic()
    for n in range(25):
        log.info("line", n=n)
    first_two = receiver.wait_requests(2)
    assert [len(r.pairs) for r in first_two] == [10, 10]
    assert first_two[1].at - started < 0.5  # sent for being full, before the interval
    (_, _, rest) = receiver.wait_requests(3)
    assert len(rest.pairs) == 5
    assert rest.at - started >= 0.5  # sent by the interval
    assert numbers(receiver.documents) == list(range(25))


def test_credentials_from_the_url_and_api_key(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver
) -> None:
    """user:password in the URL is sent as Basic auth; ``api_key`` as ``ApiKey``."""
    basic = make_telemetry(**es_config(f"http://elastic:s3cret@127.0.0.1:{receiver.port}"))
    basic.get_logger("a").info("basic", n=0)
    basic.flush()
    keyed = make_telemetry(**es_config(receiver.url, api_key="abc=="))
    keyed.get_logger("a").info("keyed", n=1)
    keyed.flush()
    first, second = receiver.wait_requests(2)
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert second.headers["Authorization"] == "ApiKey abc=="


OUTAGE = {"buffer_size": 50, "flush_interval": "50ms", "max_buffer": 200, "backoff": "200ms",
          "max_backoff": "400ms", "timeout": "500ms"}  # fmt: skip


def test_outage_never_blocks_counts_drops_and_ships_the_buffer_on_recovery(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Elasticsearch (the loopback receiver standing in for it) refusing connections,
    logging stays fast, what exceeds ``max_buffer`` is counted as ``buffer_full`` and stderr
    gets one line per attempt; once it is back, the buffered lines and the new ones are
    shipped, each exactly once."""
    receiver.stop()
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("outage")
    slowest = 0.0
    for n in range(300):
        started = time.perf_counter()
        log.info("line", n=n)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.05  # the request path never waits for Elasticsearch
    time.sleep(1.0)  # several backoff periods of refused connections
    assert dropped(tel, "elasticsearch", "buffer_full") == 100
    down = failure_lines(capsys.readouterr().err)
    assert len(down) == 1, down  # one line per report period, however many attempts failed
    assert "ConnectionRefusedError" in down[0]

    receiver.start()  # the same port, answering again
    documents = receiver.wait_for(200, timeout=5)
    assert numbers(documents) == list(range(200))  # the oldest kept; the newest were dropped
    log.info("after", n=300)
    assert tel.pipeline is not None
    assert tel.pipeline.flush(5)
    assert numbers(receiver.documents) == [*range(200), 300]
    assert "recovered" in capsys.readouterr().err
    assert dropped(tel, "elasticsearch", "rejected") == 0


def test_server_errors_are_retried_with_backoff(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """HTTP 500s are retried after growing backoff periods, one stderr line per failed
    attempt, and nothing is lost or duplicated once the server heals."""
    receiver.mode = "500"
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("errors")
    for n in range(30):
        log.info("line", n=n)
    attempts = receiver.wait_requests(4, timeout=5)
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # 0.2 s, then 0.4 s (the cap): a little under, for the clocks of two threads
    assert [gap >= floor for gap, floor in zip(gaps, (0.15, 0.35, 0.35), strict=False)] == [
        True,
        True,
        True,
    ], gaps
    receiver.mode = "ok"
    documents = receiver.wait_for(30, timeout=5)
    assert numbers(documents) == list(range(30))
    tel.flush()
    failed = len(receiver.requests) - 1
    assert failed >= 2  # retried with backoff
    lines = failure_lines(capsys.readouterr().err)
    assert len(lines) == 1  # one line per report period, not one per failed attempt
    assert "HTTP 500" in lines[0]
    assert sum(dropped(tel, "elasticsearch", r) for r in ("buffer_full", "rejected")) == 0


def test_retry_after_of_a_429_is_honoured(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 429 saying `Retry-After: 1` delays the next attempt a second, though the configured
    backoff is 200 ms; the events are shipped once it is over."""
    receiver.mode, receiver.retry_after = "429", "1"
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("busy")
    for n in range(10):
        log.info("line", n=n)
    first, second = receiver.wait_requests(2, timeout=5)[:2]
    assert second.at - first.at >= 0.95
    receiver.mode = "ok"
    assert numbers(receiver.wait_for(10, timeout=5)) == list(range(10))
    assert len(failure_lines(capsys.readouterr().err)) == 1


def test_item_errors_retry_429_and_drop_rejected_documents(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Items answered 429 are sent again; items refused for good (400) are dropped, counted
    as ``rejected`` and named on stderr; the others are stored once."""
    receiver.mode = "items"
    receiver.reject_if = lambda n: n % 10 == 1
    receiver.retry_if = lambda n: n % 10 == 2
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("items")
    for n in range(40):
        log.info("line", n=n)
    receiver.wait_requests(2, timeout=5)  # the first answer, and the retry of the 429s
    receiver.retry_if = None  # the cluster has room again
    expected = [n for n in range(40) if n % 10 != 1]
    documents = receiver.wait_for(len(expected), timeout=5)
    assert sorted(numbers(documents)) == expected
    assert dropped(tel, "elasticsearch", "rejected") == 4
    tel.flush()  # the sender has finished its last round (and said it recovered)
    err = capsys.readouterr().err
    assert "mapper_parsing_exception" in err
    assert "refused for now" in err


def test_a_hanging_server_does_not_block_the_request_path(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver
) -> None:
    """While Elasticsearch hangs past the sink's timeout, log calls and the pipeline's own
    delivery to other sinks go on; the lines are shipped when it answers again."""
    receiver.mode = "hang"
    receiver.hang = 1.0
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("hang")
    started = time.perf_counter()
    for n in range(100):
        log.info("line", n=n)
    assert time.perf_counter() - started < 0.5
    assert tel.pipeline is not None
    memory = tel.pipeline.sinks[-1]
    time.sleep(0.3)
    assert len(memory.events) == 100  # type: ignore[attr-defined]  # the in-memory sink
    receiver.mode = "ok"
    assert numbers(receiver.wait_for(100, timeout=8)) == list(range(100))


def test_what_cannot_be_shipped_at_shutdown_is_counted(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Events still buffered when Telemetry shuts down during an outage count as ``shutdown``."""
    receiver.stop()
    tel = make_telemetry(**es_config(receiver.url, **OUTAGE))
    log = tel.get_logger("bye")
    for n in range(20):
        log.info("line", n=n)
    tel.shutdown(timeout=1)
    assert dropped(tel, "elasticsearch", "shutdown") == 20
    assert "20 events not shipped at shutdown" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"url": "es:9200"},
            "logging.sinks.elasticsearch.url: expected an http:// or https:// URL",
        ),
        (
            {"url": "ftp://es"},
            "logging.sinks.elasticsearch.url: expected an http:// or https:// URL",
        ),
        (
            {"url": "http://es", "buffer_size": 0},
            "logging.sinks.elasticsearch.buffer_size: expected",
        ),
        (
            {"url": "http://es", "flush_interval": "soon"},
            "logging.sinks.elasticsearch.flush_interval",
        ),
        ({}, "logging.sinks.elasticsearch.url: required"),
    ],
)
def test_bad_elasticsearch_settings(settings: dict[str, Any], problem: str) -> None:
    """Elasticsearch sink settings are checked with their key paths."""
    with pytest.raises(ConfigError) as info:
        Telemetry(
            {"logging": {"sinks": {"console": False, "elasticsearch": settings}}}, use_env=False
        )
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_the_buffer_is_bounded_by_bytes_while_elasticsearch_is_away(
    make_telemetry: MakeTelemetry, receiver: BulkReceiver
) -> None:
    """With Elasticsearch away, ``max_buffer_bytes`` stops the buffer (and the batch being
    retried) long before ``max_buffer`` events; the rest is counted as ``buffer_full``, and
    what was kept is shipped on recovery."""
    receiver.stop()
    bounded = {**OUTAGE, "max_buffer": 10_000, "max_buffer_bytes": "32KB"}
    tel = make_telemetry(**es_config(receiver.url, **bounded))
    log = tel.get_logger("outage")
    for n in range(100):
        log.info("line", n=n, payload="y" * 1000)
    time.sleep(0.5)  # delivered to the sink, refused at least once
    pipeline = tel.pipeline
    assert pipeline is not None
    (sink,) = [s for s in pipeline.sinks if getattr(s, "name", "") == "elasticsearch"]
    assert isinstance(sink, ElasticsearchSink)
    assert 0 < sink._bytes <= 32_000
    full = dropped(tel, "elasticsearch", "buffer_full")
    assert 60 <= full < 100
    receiver.start()
    kept = int(100 - full)
    assert numbers(receiver.wait_for(kept, timeout=5)) == list(range(kept))
    assert pipeline.flush(5)
    assert sink._bytes == 0
