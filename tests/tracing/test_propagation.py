"""Propagation: B3 single and multi-header, configured order, conflicts, fuzzing, trust policy."""

from __future__ import annotations

import random
import string

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

from telemetry_web.config import TracingSettings, parse_section
from telemetry_web.config._model import TrustSettings
from telemetry_web.errors import ConfigError
from telemetry_web.tracing._propagation import Extractor, build_propagator

from ._support import call, traced_app
from .conftest import Capture

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"
PARENT = "0020000000000001"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


def ids(context: Context) -> tuple[str, str, bool] | None:
    span = get_current_span(context).get_span_context()
    if not span.is_valid:
        return None
    return f"{span.trace_id:032x}", f"{span.span_id:016x}", span.trace_flags.sampled


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{TRACE}-{SPAN}", (TRACE, SPAN, True)),
        (f"{TRACE}-{SPAN}-1", (TRACE, SPAN, True)),
        (f"{TRACE}-{SPAN}-d", (TRACE, SPAN, True)),
        (f"{TRACE}-{SPAN}-0", (TRACE, SPAN, False)),
        (f"{TRACE}-{SPAN}-1-{PARENT}", (TRACE, SPAN, True)),
        (f"{TRACE[16:]}-{SPAN}-1", ("0" * 16 + TRACE[16:], SPAN, True)),
        (f"{TRACE.upper()}-{SPAN.upper()}-1", (TRACE, SPAN, True)),
        ("0", None),
        ("1", None),
        (f"{TRACE}", None),
        (f"{TRACE}-{SPAN}-2", None),
        (f"{TRACE}-{SPAN}-1-xyz", None),
        (f"{TRACE}-{SPAN}-1-{PARENT}-extra", None),
        (f"{TRACE[:-1]}-{SPAN}-1", None),
        (f"{TRACE}-{SPAN[:-1]}-1", None),
        (f"{'0' * 32}-{SPAN}-1", None),
        (f"{TRACE}-{'0' * 16}-1", None),
        (f"{TRACE}-{SPAN}-1,{TRACE}-{SPAN}-0", None),
        (f"{'g' * 32}-{SPAN}-1", None),
        ("", None),
    ],
)
def test_b3_single_header_extraction(value: str, expected: tuple[str, str, bool] | None) -> None:
    """The `b3` header is read strictly: anything but ids and a 0/1/d state gives no context."""
    assert ids(Extractor(["b3"]).extract({"b3": value})) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN}, (TRACE, SPAN, True)),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "0"}, (TRACE, SPAN, False)),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1"}, (TRACE, SPAN, True)),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "true"}, (TRACE, SPAN, True)),
        (
            {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "0", "x-b3-flags": "1"},
            (TRACE, SPAN, True),
        ),
        (
            {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": PARENT},
            (TRACE, SPAN, True),
        ),
        ({"x-b3-traceid": TRACE}, None),
        ({"x-b3-spanid": SPAN}, None),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "yes"}, None),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-flags": "2"}, None),
        ({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": "zz"}, None),
        ({"x-b3-traceid": f"{TRACE},{TRACE}", "x-b3-spanid": SPAN}, None),
        ({"x-b3-traceid": TRACE + "0", "x-b3-spanid": SPAN}, None),
    ],
)
def test_b3_multi_header_extraction(
    headers: dict[str, str], expected: tuple[str, str, bool] | None
) -> None:
    """The `X-B3-*` headers are read strictly; a missing id or bad value gives no context."""
    assert ids(Extractor(["b3multi"]).extract(headers)) == expected


def _remote(sampled: bool = True) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(int(TRACE, 16), int(SPAN, 16), is_remote=True, trace_flags=flags)
    return set_span_in_context(NonRecordingSpan(context))


@pytest.mark.parametrize("sampled", [True, False])
def test_injection_writes_every_configured_format_in_order(sampled: bool) -> None:
    """Injection writes W3C, B3 single and B3 multi headers, in the configured order."""
    carrier: dict[str, str] = {}
    build_propagator(["b3multi", "b3", "w3c"]).inject(carrier, _remote(sampled))
    flag = "1" if sampled else "0"
    assert list(carrier) == ["X-B3-TraceId", "X-B3-SpanId", "X-B3-Sampled", "b3", "traceparent"]
    assert carrier["X-B3-TraceId"] == TRACE
    assert carrier["X-B3-SpanId"] == SPAN
    assert carrier["X-B3-Sampled"] == flag
    assert carrier["b3"] == f"{TRACE}-{SPAN}-{flag}"
    assert carrier["traceparent"] == f"00-{TRACE}-{SPAN}-0{flag}"


@pytest.mark.parametrize("names", [["b3"], ["b3multi"], ["w3c"]])
def test_injected_headers_extract_to_the_same_context(names: list[str]) -> None:
    """What one service injects, the next extracts unchanged, in each format."""
    carrier: dict[str, str] = {}
    build_propagator(names).inject(carrier, _remote())
    lowered = {k.lower(): v for k, v in carrier.items()}
    assert ids(Extractor(names).extract(lowered)) == (TRACE, SPAN, True)


def test_agreeing_formats_continue_and_conflicting_formats_start_a_new_trace() -> None:
    """W3C and B3 stating the same context are continued; stating different ones, ignored."""
    extractor = Extractor(["w3c", "b3", "b3multi"])
    agree = {"traceparent": TRACEPARENT, "b3": f"{TRACE}-{SPAN}-1"}
    assert ids(extractor.extract(agree)) == (TRACE, SPAN, True)
    other = "1" * 32
    conflict = {"traceparent": TRACEPARENT, "x-b3-traceid": other, "x-b3-spanid": SPAN}
    assert ids(extractor.extract(conflict)) is None
    one_valid = {"traceparent": TRACEPARENT, "b3": "garbage"}
    assert ids(extractor.extract(one_valid)) == (TRACE, SPAN, True)


def test_configured_order_picks_the_first_format_present() -> None:
    """With `[b3, w3c]` a request carrying only a traceparent is still continued."""
    assert ids(Extractor(["b3", "w3c"]).extract({"traceparent": TRACEPARENT})) == (
        TRACE,
        SPAN,
        True,
    )
    assert ids(Extractor(["b3"]).extract({"traceparent": TRACEPARENT})) is None


def test_oversized_headers_are_ignored() -> None:
    """A context header longer than 8 KiB is not parsed (a new root trace starts)."""
    extractor = Extractor(["w3c", "b3", "baggage"])
    assert ids(extractor.extract({"b3": f"{TRACE}-{SPAN}-1" + " " * 9000})) is None
    huge_baggage = ",".join(f"k{i}=v" for i in range(3000))
    context = extractor.extract({"traceparent": TRACEPARENT, "baggage": huge_baggage})
    assert ids(context) == (TRACE, SPAN, True)


def _mutations(rng: random.Random) -> list[tuple[bytes, bytes]]:
    valid = [
        (b"traceparent", TRACEPARENT.encode()),
        (b"tracestate", b"vendor=opaque,other=1"),
        (b"baggage", b"user=alice,tier=gold"),
        (b"b3", f"{TRACE}-{SPAN}-1-{PARENT}".encode()),
        (b"x-b3-traceid", TRACE.encode()),
        (b"x-b3-spanid", SPAN.encode()),
        (b"x-b3-sampled", b"1"),
        (b"x-b3-flags", b"1"),
        (b"x-b3-parentspanid", PARENT.encode()),
    ]
    alphabet = (string.printable + "\x00\xff-=,;").encode("latin-1")
    headers: list[tuple[bytes, bytes]] = []
    for name, value in rng.sample(valid, rng.randint(1, len(valid))):
        kind = rng.randrange(8)
        if kind == 0:
            value = value[: rng.randrange(len(value) + 1)]
        elif kind == 1:
            position = rng.randrange(len(value))
            value = value[:position] + bytes([rng.choice(alphabet)]) + value[position + 1 :]
        elif kind == 2:
            value = value * rng.randint(50, 400)
        elif kind == 3:
            value = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        elif kind == 4:
            headers.append((name, bytes(rng.choice(alphabet) for _ in range(20))))
        elif kind == 5:
            value = value + b"," + value[::-1]
        elif kind == 6:
            value = "é".join(value.decode("latin-1")).encode("utf-8")
        headers.append((name, value))
    return headers


async def test_fuzzed_context_headers_never_fail_a_request(
    capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    """Hundreds of mutated, oversized, duplicated and non-UTF-8 context headers: always a 200
    and one server span, continuing only ids a header stated, and no warning per request."""
    captured = capture({"tracing": {"propagation": ["w3c", "b3", "b3multi", "baggage"]}})
    app = traced_app(captured.telemetry)
    rng = random.Random(4)
    sent: list[str] = []
    for _ in range(400):
        headers = _mutations(rng)
        sent.append(b" ".join(v for _, v in headers).decode("latin-1").lower())
        assert await call(app, headers=headers) == 200
    spans = sorted(captured.spans(), key=lambda s: s.start_time or 0)
    assert len(spans) == 400
    continued = 0
    for span, text in zip(spans, sent, strict=False):
        if span.parent is not None:
            continued += 1
            assert f"{span.parent.trace_id:032x}".lstrip("0") in text
            assert f"{span.parent.span_id:016x}" in text
            assert span.context.trace_id == span.parent.trace_id
    assert 0 < continued < 400
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


def test_fuzzed_context_headers_through_the_lifecycle(capture: Capture) -> None:
    """`RequestLifecycle.begin` with fuzzed header text never raises and always opens a span."""
    captured = capture({"tracing": {"propagation": ["b3multi", "b3", "w3c", "baggage"]}})
    life = captured.telemetry.lifecycle
    rng = random.Random(7)
    for _ in range(300):
        headers = {k.decode(): v.decode("latin-1") for k, v in _mutations(rng)}
        active = life.begin(
            method="GET", scheme="http", path="/x", query="", route="/x", headers=headers,
            client="203.0.113.9",
        )  # fmt: skip
        assert active.span is not None
        active.finish(200)
    assert len(captured.spans()) == 300


# --- trust policy ----------------------------------------------------------------------------

CALLER = [(b"traceparent", TRACEPARENT.encode()), (b"baggage", b"user=alice")]


async def _one_span(capture: Capture, trust: object, *, client: str = "198.51.100.7",
                    extra: list[tuple[bytes, bytes]] | None = None) -> ReadableSpan:  # fmt: skip
    captured = capture({"tracing": {"trust": trust}})
    assert await call(traced_app(captured.telemetry), headers=[*CALLER, *(extra or [])],
                      client=client) == 200  # fmt: skip
    (span,) = captured.spans()
    return span


async def test_trust_continue_is_the_default(capture: Capture) -> None:
    """By default the caller's trace is continued: same trace id, the caller as parent."""
    span = await _one_span(capture, "continue")
    assert f"{span.context.trace_id:032x}" == TRACE
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == SPAN
    assert list(span.links) == []


async def test_trust_restart_starts_a_root_linked_to_the_caller(capture: Capture) -> None:
    """`restart`: a new root trace whose span links to the caller's span context."""
    span = await _one_span(capture, "restart")
    assert span.parent is None
    assert f"{span.context.trace_id:032x}" != TRACE
    (link,) = span.links
    assert f"{link.context.trace_id:032x}" == TRACE
    assert f"{link.context.span_id:016x}" == SPAN


async def test_trust_ignore_drops_context_and_baggage(capture: Capture) -> None:
    """`ignore`: a new root trace with no link, and the caller's baggage is not kept."""
    extractor = Extractor(["w3c", "baggage"], TrustSettings(type="ignore"))
    parent, links = extractor.resolve({"traceparent": TRACEPARENT, "baggage": "a=b"}, "10.0.0.1")
    assert parent == Context()
    assert links == ()
    span = await _one_span(capture, "ignore")
    assert span.parent is None
    assert list(span.links) == []


@pytest.mark.parametrize(
    ("client", "extra", "continued"),
    [
        ("10.1.2.3", [], True),
        ("10.255.0.1", [], True),
        ("192.0.2.1", [], False),
        ("::1", [], True),
        ("not-an-ip", [], False),
        ("192.0.2.1", [(b"x-edge-token", b"s3cret")], True),
        ("192.0.2.1", [(b"x-edge-token", b"wrong")], False),
    ],
)
async def test_trusted_networks_and_headers_are_continued(
    capture: Capture, client: str, extra: list[tuple[bytes, bytes]], continued: bool
) -> None:
    """Under `restart`, callers in a trusted CIDR or sending the trusted header are continued."""
    trust = {
        "type": "restart",
        "trusted_networks": ["10.0.0.0/8", "::1/128"],
        "trusted_headers": {"X-Edge-Token": "s3cret"},
    }
    span = await _one_span(capture, trust, client=client, extra=extra)
    assert (span.parent is not None) is continued
    assert (len(span.links) == 0) is continued


def test_trust_configuration_forms_and_errors() -> None:
    """`trust: restart` is the short form; a bad network is reported with its key path."""
    settings = parse_section(TracingSettings, {"trust": "restart"}, path="tracing")
    assert settings.trust.type == "restart"
    with pytest.raises(ConfigError, match=r"tracing\.trust\.trusted_networks"):
        parse_section(
            TracingSettings, {"trust": {"trusted_networks": ["10.0.0.0/33"]}}, path="tracing"
        )


def test_b3_propagation_is_accepted_by_the_configuration(capture: Capture) -> None:
    """`b3` and `b3multi` are no longer rejected at configure time."""
    captured = capture({"tracing": {"propagation": ["b3", "b3multi"]}})
    assert captured.telemetry.extractor.header_names >= {"b3", "x-b3-traceid"}
