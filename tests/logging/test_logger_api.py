"""The logger API: levels, bound loggers, exceptions as fields, run-time level changes."""

from __future__ import annotations

import logging
import re

import pytest

from telemetry_web import Telemetry
from telemetry_web.testing import InMemoryLogSink

from .conftest import ENVIRONMENT, SERVICE, MakeTelemetry, events_of

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_info_line_has_the_standard_fields(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """A line carries timestamp, level, event, logger, service, environment and its own keys."""
    tel.get_logger("api").info("Processing request", method="GET", user_id=42)
    (event,) = events_of(memory, tel)
    assert ISO_UTC.match(event["timestamp"])
    assert {k: v for k, v in event.items() if k != "timestamp"} == {
        "level": "info",
        "event": "Processing request",
        "logger": "api",
        "service": SERVICE,
        "environment": ENVIRONMENT,
        "method": "GET",
        "user_id": 42,
    }
    assert list(event)[:6] == ["timestamp", "level", "event", "logger", "service", "environment"]


def test_every_level_method(make_telemetry: MakeTelemetry, memory: InMemoryLogSink) -> None:
    """debug, info, warning, warn, error, err, critical, fatal, msg and log(n) name their level."""
    tel = make_telemetry(logging={"level": "debug"})
    log = tel.get_logger("levels")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.warn("w2")
    log.error("e")
    log.err("e2")
    log.critical("c")
    log.fatal("c2")
    log.msg("m")
    log.log(logging.WARNING, "l")
    log.log(15, "between debug and info")
    levels = [(e["event"], e["level"]) for e in events_of(memory, tel)]
    assert levels == [
        ("d", "debug"),
        ("i", "info"),
        ("w", "warning"),
        ("w2", "warning"),
        ("e", "error"),
        ("e2", "error"),
        ("c", "critical"),
        ("c2", "critical"),
        ("m", "info"),
        ("l", "warning"),
        ("between debug and info", "debug"),
    ]


async def test_async_methods(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """The structlog async variants (ainfo, aerror, alog...) deliver the same events."""
    log = tel.get_logger("async")
    await log.ainfo("a-info", n=1)
    await log.awarning("a-warning")
    await log.alog(logging.ERROR, "a-log")
    try:
        raise KeyError("missing")
    except KeyError:
        await log.aexception("a-exception")
    events = events_of(memory, tel)
    assert [(e["event"], e["level"]) for e in events] == [
        ("a-info", "info"),
        ("a-warning", "warning"),
        ("a-log", "error"),
        ("a-exception", "error"),
    ]
    assert events[0]["n"] == 1
    assert events[3]["exception"]["type"] == "KeyError"


def test_level_filters_lower_levels(make_telemetry: MakeTelemetry, memory: InMemoryLogSink) -> None:
    """Below ``logging.level`` nothing is built or delivered."""
    tel = make_telemetry(logging={"level": "warning"})
    log = tel.get_logger("api")
    log.debug("no")
    log.info("no")
    log.warning("yes")
    assert [e["event"] for e in events_of(memory, tel)] == ["yes"]
    assert not log.is_enabled_for(logging.INFO)
    assert log.is_enabled_for(logging.ERROR)
    assert log.get_effective_level() == logging.WARNING


def test_positional_arguments_are_interpolated(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """``log.info("%s items", 3)`` renders the message as structlog does."""
    log = tel.get_logger("fmt")
    log.info("%s items in %s", 3, "cart")
    log.info("%(n)d left", {"n": 2})
    assert [e["event"] for e in events_of(memory, tel)] == ["3 items in cart", "2 left"]


def test_bind_unbind_and_new(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """Bound loggers add their context; unbind and new remove it; the original is unchanged."""
    base = tel.get_logger("orders")
    bound = base.bind(order_id=7, customer="ada")
    bound.info("bound")
    bound.unbind("customer").info("unbound")
    bound.try_unbind("nothing", "order_id").info("try-unbound")
    bound.new(fresh=True).info("new")
    base.info("base")
    lines = {e["event"]: e for e in events_of(memory, tel)}
    assert (lines["bound"]["order_id"], lines["bound"]["customer"]) == (7, "ada")
    assert "customer" not in lines["unbound"]
    assert lines["unbound"]["order_id"] == 7
    assert "order_id" not in lines["try-unbound"]
    assert lines["new"]["fresh"] is True
    assert "order_id" not in lines["new"]
    assert "order_id" not in lines["base"]


def test_call_keywords_win_over_bound_values(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """A keyword of the call overrides the same key bound earlier."""
    tel.get_logger("api").bind(step="bound").info("x", step="call")
    (event,) = events_of(memory, tel)
    assert event["step"] == "call"


def _raise_nested() -> None:
    try:
        raise ValueError("inner problem")
    except ValueError as exc:
        raise RuntimeError("outer problem") from exc


def test_exc_info_renders_exception_fields(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """``exc_info=True`` becomes ``exception: {type, message, stack}``, the chain included."""
    log = tel.get_logger("errors")
    try:
        _raise_nested()
    except RuntimeError:
        log.error("Failed", exc_info=True, order_id=3)
    (event,) = events_of(memory, tel)
    assert "exc_info" not in event
    exception = event["exception"]
    assert exception["type"] == "RuntimeError"
    assert exception["message"] == "outer problem"
    assert "ValueError: inner problem" in exception["stack"]
    assert "_raise_nested" in exception["stack"]
    assert exception["stack"].rstrip().endswith("RuntimeError: outer problem")
    assert event["order_id"] == 3


def test_exception_method_and_exception_instances(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """``log.exception`` is an error with the current exception; an exception instance as
    ``exc_info`` works outside ``except``; ``exc_info=False`` adds nothing."""

    class PaymentDeclined(Exception):
        pass

    log = tel.get_logger("errors")
    try:
        raise PaymentDeclined("card refused")
    except PaymentDeclined as exc:
        log.exception("declined")
        saved = exc
    log.warning("later", exc_info=saved)
    log.info("none", exc_info=False)
    declined, later, none = events_of(memory, tel)
    assert declined["level"] == "error"
    assert declined["exception"]["type"].endswith("PaymentDeclined")
    assert declined["exception"]["type"].startswith("tests.logging.")
    assert later["exception"]["message"] == "card refused"
    assert "exception" not in none
    assert "exc_info" not in none


def test_per_logger_levels_inherit_by_dotted_name(
    make_telemetry: MakeTelemetry, memory: InMemoryLogSink
) -> None:
    """``logging.levels`` applies to a logger and its dotted children, not to its siblings."""
    tel = make_telemetry(logging={"level": "info", "levels": {"db": "warning", "db.slow": "debug"}})
    for name in ("db", "db.pool", "db.slow", "db.slow.query", "dbx", "api"):
        log = tel.get_logger(name)
        log.debug("debug")
        log.info("info")
    kept = sorted((e["logger"], e["event"]) for e in events_of(memory, tel))
    assert kept == [
        ("api", "info"),
        ("db.slow", "debug"),
        ("db.slow", "info"),
        ("db.slow.query", "debug"),
        ("db.slow.query", "info"),
        ("dbx", "info"),
    ]


def test_set_level_changes_existing_loggers(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """``set_level`` reaches loggers made before it, their bound copies and later ones."""
    log = tel.get_logger("payments")
    bound = log.bind(k=1)
    log.debug("before")
    tel.set_level("payments", "debug")
    log.debug("after")
    bound.debug("bound after")
    tel.get_logger("payments.stripe").debug("child after")
    tel.get_logger("other").debug("other after")
    tel.set_level("payments", None)  # back to the default
    log.debug("removed")
    tel.set_level(None, "error")  # the default level
    log.warning("default raised")
    tel.get_logger("other").error("error still")
    events = [e["event"] for e in events_of(memory, tel)]
    assert events == ["after", "bound after", "child after", "error still"]
    assert tel.settings.logging.level == "error"
    assert tel.settings.logging.levels == {}


def test_configure_logging_changes_existing_loggers(
    tel: Telemetry, memory: InMemoryLogSink
) -> None:
    """A new ``logging`` section applies its levels to loggers already handed out."""
    log = tel.get_logger("jobs")
    log.debug("before")
    tel.configure_logging({"sinks": {"console": False}, "levels": {"jobs": "debug"}})
    log.debug("after")
    assert [e["event"] for e in events_of(memory, tel)] == ["after"]


def test_set_level_reaches_stdlib_loggers(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """Standard ``logging`` loggers follow the same run-time level changes."""
    stdlib = logging.getLogger("tests.logging.stdlib")
    stdlib.debug("before")
    tel.set_level("tests.logging.stdlib", "debug")
    stdlib.debug("after")
    tel.set_level("tests.logging.stdlib", None)
    stdlib.debug("removed")
    assert stdlib.level == logging.NOTSET
    events = [e["event"] for e in events_of(memory, tel, "tests.logging.stdlib")]
    assert events == ["after"]


def test_set_level_request_logger(tel: Telemetry) -> None:
    """Raising telemetry_web.request's level at run time reaches the request lifecycle."""
    assert tel.lifecycle.log_threshold == logging.INFO
    tel.set_level("telemetry_web.request", "error")
    assert tel.lifecycle.log_threshold == logging.ERROR


@pytest.mark.parametrize(("name", "level"), [("api", "loud"), (None, None), ("api", "")])
def test_set_level_rejects_bad_values(tel: Telemetry, name: str | None, level: str | None) -> None:
    """An unknown level name, or removing the default level, is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="level"):
        tel.set_level(name, level)


def test_stdlib_records_share_the_pipeline(tel: Telemetry, memory: InMemoryLogSink) -> None:
    """A standard ``logging`` record becomes an event with its extra fields and exception."""
    stdlib = logging.getLogger("tests.logging.bridge")
    try:
        raise OSError("disk gone")
    except OSError:
        stdlib.error("Write failed for %s", "orders", exc_info=True, extra={"attempt": 2})
    (event,) = events_of(memory, tel, "tests.logging.bridge")
    assert event["event"] == "Write failed for orders"
    assert event["level"] == "error"
    assert event["attempt"] == 2
    assert event["exception"]["type"] == "OSError"
    assert event["service"] == SERVICE
