"""Processors in configured order: add_fields, filter, sample, redact; asserted on JSON fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telemetry_web.errors import ConfigError
from telemetry_web.logging._processors import Redactor
from telemetry_web.logging._sinks import render_json
from telemetry_web.testing import InMemoryLogSink

from .conftest import MakeTelemetry, events_of


def logged_json(memory: InMemoryLogSink, tel: Any) -> list[dict[str, Any]]:
    """The delivered events as the JSON sinks render them, parsed back."""
    return [json.loads(render_json(e)) for e in events_of(memory, tel)]


def test_add_fields_adds_without_overriding(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """``add_fields`` puts its fields on every line but never replaces the line's own."""
    tel = make_telemetry(
        logging={"processors": [{"add_fields": {"fields": {"region": "eu-west-1", "tier": 2}}}]}
    )
    log = tel.get_logger("api")
    log.info("plain")
    log.info("own", region="us-east-1")
    plain, own = logged_json(memory, tel)
    assert (plain["region"], plain["tier"]) == ("eu-west-1", 2)
    assert (own["region"], own["tier"]) == ("us-east-1", 2)


def test_filter_drops_matching_events(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """``filter`` drops events whose field equals an excluded value or matches a glob."""
    tel = make_telemetry(
        logging={
            "processors": [{"filter": {"field": "path", "exclude": ["/health", "/internal/*"]}}]
        }
    )
    log = tel.get_logger("api")
    for path in ("/health", "/internal/debug", "/api/users", "/healthz"):
        log.info("hit", path=path)
    log.info("no path")
    kept = [(e["event"], e.get("path")) for e in logged_json(memory, tel)]
    assert kept == [("hit", "/api/users"), ("hit", "/healthz"), ("no path", None)]


def test_sample_keeps_one_in_n_per_event_name(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """``sample`` keeps the 1st, (N+1)th... event of each name, counted per name."""
    tel = make_telemetry(logging={"processors": [{"sample": {"every": 10}}]})
    log = tel.get_logger("chatty")
    for i in range(25):
        log.info("cache hit", i=i)
        if i % 5 == 0:
            log.info("poll", i=i)
    kept = [(e["event"], e["i"]) for e in logged_json(memory, tel)]
    assert [i for name, i in kept if name == "cache hit"] == [0, 10, 20]
    assert [i for name, i in kept if name == "poll"] == [0]  # 5 polls: the first is kept


def test_sample_limited_to_named_events_keeps_warnings(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """With ``events``, only matching names are sampled; warnings and errors always pass."""
    tel = make_telemetry(logging={"processors": [{"sample": {"every": 3, "events": ["cache *"]}}]})
    log = tel.get_logger("chatty")
    for i in range(6):
        log.info("cache hit", i=i)
        log.info("order placed", i=i)
        log.warning("cache slow", i=i)
    events = logged_json(memory, tel)
    assert [e["i"] for e in events if e["event"] == "cache hit"] == [0, 3]
    assert [e["i"] for e in events if e["event"] == "order placed"] == list(range(6))
    assert [e["i"] for e in events if e["event"] == "cache slow"] == list(range(6))


NESTED_SECRETS: dict[str, Any] = {
    "password": "hunter2",
    "Authorization": "Bearer abc",
    "headers": {"cookie": "session=1", "Set-Cookie": "a=b", "accept": "text/html"},
    "payload": [{"api_key": "k-1", "name": "ada"}, {"deep": {"deeper": {"token": "t-1"}}}],
    "db_password": "pw",
    "X-Api-Key": "xk",
    "refreshToken": "rt",
    "client_secret": "cs",
    "tokens_used": 12,
    "user_agent": "curl",
}


def test_redaction_is_on_by_default_at_any_depth(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """Without configuration, credential keys are redacted at any depth, as whole words too."""
    tel = make_telemetry()
    tel.get_logger("api").info("request", **NESTED_SECRETS)
    (event,) = logged_json(memory, tel)
    assert event["password"] == "REDACTED"
    assert event["Authorization"] == "REDACTED"
    assert event["headers"] == {
        "cookie": "REDACTED",
        "Set-Cookie": "REDACTED",
        "accept": "text/html",
    }
    assert event["payload"] == [
        {"api_key": "REDACTED", "name": "ada"},
        {"deep": {"deeper": {"token": "REDACTED"}}},
    ]
    for key in ("db_password", "X-Api-Key", "refreshToken", "client_secret"):
        assert event[key] == "REDACTED", key
    assert event["tokens_used"] == 12  # "tokens" is not the word "token"
    assert event["user_agent"] == "curl"
    text = json.dumps(event)
    for secret in ("hunter2", "Bearer abc", "session=1", "k-1", "t-1", "xk", "rt", "cs"):
        assert secret not in text


def test_redact_configured_keys_and_patterns(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """Configured key globs and value patterns are redacted on top of the built-in keys."""
    tel = make_telemetry(
        logging={
            "processors": [
                {"redact": {"keys": ["ssn", "*_pin"], "patterns": [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]}}
            ]
        }
    )
    tel.get_logger("api").info(
        "paid with 4111-1111-1111-1111 today",
        ssn="123-45-6789",
        card_pin="0000",
        SSN="upper",
        nested={"note": "card 4111-1111-1111-1111", "password": "p"},
        amount=12,
    )
    (event,) = logged_json(memory, tel)
    assert event["event"] == "paid with REDACTED today"
    assert (event["ssn"], event["card_pin"], event["SSN"]) == ("REDACTED",) * 3
    assert event["nested"] == {"note": "card REDACTED", "password": "REDACTED"}
    assert event["amount"] == 12


def test_processors_run_in_configured_order(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """Steps see the result of the steps listed before them, and only those."""
    tel = make_telemetry(
        logging={
            "processors": [
                {"redact": {"keys": ["note"]}},
                # added after redaction ran: not redacted
                {"add_fields": {"fields": {"note": "added late"}}},
                # filters on a field only add_fields put there
                {"filter": {"field": "note", "exclude": ["added late"]}},
            ]
        }
    )
    log = tel.get_logger("api")
    log.info("own note", note="secret plan")
    log.info("no note")
    (event,) = logged_json(memory, tel)
    assert (event["event"], event["note"]) == ("own note", "REDACTED")


def test_default_redaction_runs_after_configured_steps(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """Without a ``redact`` step, redaction runs last: fields added by add_fields are covered."""
    tel = make_telemetry(logging={"processors": [{"add_fields": {"fields": {"api_token": "t"}}}]})
    tel.get_logger("api").info("x")
    (event,) = logged_json(memory, tel)
    assert event["api_token"] == "REDACTED"


def test_redactor_leaves_common_events_untouched() -> None:
    """Once its keys are known harmless, an event of scalars is returned as it is (no copy)."""
    redactor = Redactor()
    event = {"event": "x", "level": "info", "n": 1}
    assert redactor(event) == event  # the first sight of each key decides and caches it
    assert redactor(event) is event
    assert redactor({"token": "t"}) == {"token": "REDACTED"}


@pytest.mark.parametrize(
    ("processor", "problem"),
    [
        ({"sample": {}}, "logging.processors[0].every: required for type 'sample'"),
        ({"sample": {"every": 0}}, "logging.processors[0].every: expected a positive number"),
        ({"redact": {"patterns": ["("]}}, "logging.processors[0].patterns: expected regular"),
        ({"redact": {"every": 2}}, "logging.processors[0].every: not used by type 'redact'"),
        ({"shuffle": {}}, "logging.processors[0]"),
    ],
)
def test_bad_processor_configuration(
    make_telemetry: MakeTelemetry, processor: dict[str, Any], problem: str
) -> None:
    """Processor configuration errors name their key path."""
    with pytest.raises(ConfigError) as info:
        make_telemetry(logging={"processors": [processor]})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_value_patterns_scrub_strings_and_exceptions_by_default(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """Without configuration, card numbers, bearer credentials, ``password=`` pairs and
    database echoes are scrubbed from string values and from exception messages and stacks."""
    tel = make_telemetry()
    statement_error = (
        "(psycopg.errors.UniqueViolation) duplicate key\n"
        "DETAIL:  Key (pan)=(card=4111111111111111) already exists.\n"
        "[SQL: INSERT INTO t (pan) VALUES ('card=4111111111111111')]\n"
        "[parameters: {'pan': 'zz-param-zz'}]"
    )
    try:
        raise RuntimeError(statement_error)
    except RuntimeError:
        tel.get_logger("api").exception(
            "failed", note="Authorization: Bearer abcdef123456 with password=hunter2"
        )
    (event,) = logged_json(memory, tel)
    assert event["note"] == "Authorization: REDACTED REDACTED with password=REDACTED"
    message = event["exception"]["message"]
    assert "Key (pan)=(REDACTED) already exists." in message
    assert "[SQL: INSERT INTO t (pan) VALUES (?)]" in message
    assert "[parameters: REDACTED]" in message
    text = json.dumps(event)
    for secret in ("4111111111111111", "zz-param-zz", "abcdef123456", "hunter2"):
        assert secret not in text


def test_default_key_rules_match_the_query_rules(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """The widened names redact log fields too; ``key`` and ``code`` (URL-only names) and words
    merely starting with ``token`` stay."""
    tel = make_telemetry()
    fields = {"jwt": "j", "sessionId": "s", "credentials": "c", "my_secret_thing": "m",
              "status_code": 200, "cache_key": "k", "tokens_used": 3}  # fmt: skip
    tel.get_logger("api").info("fields", **fields)
    (event,) = logged_json(memory, tel)
    for name in ("jwt", "sessionId", "credentials", "my_secret_thing"):
        assert event[name] == "REDACTED", name
    assert (event["status_code"], event["cache_key"], event["tokens_used"]) == (200, "k", 3)
