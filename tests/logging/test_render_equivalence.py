"""The orjson path of ``render_json`` writes the very line the stdlib encoder writes.

``_render_flat`` either returns the stdlib's line byte for byte or declines (None); checked on
the events the conformance suite records for every adapter, on edge cases, and on random flat
events made of the characters that matter (quotes, separators, backslashes, controls).
"""

from __future__ import annotations

import datetime
import enum
import math
import random
import sys
import uuid
from typing import Any

import pytest

from telemetry_web.logging import _sinks

pytest.importorskip("orjson")


def stdlib(event: dict[Any, Any]) -> str:
    assert _sinks._make_chunks is not None
    return "".join(_sinks._make_chunks(event, 0))


def check(event: dict[Any, Any]) -> bool:
    """Whether the fast path took ``event``; fails if it did and wrote another line."""
    line = _sinks._render_flat(event)
    if line is None:
        return False
    assert line == stdlib(event), event
    assert _sinks.render_json(event) == line
    return True


def test_conformance_events_render_as_the_stdlib_does() -> None:
    import tests.adapters.django.conftest  # noqa: F401  (Django settings, as the suite does)
    from tests.conformance._adapters import ADAPTER_NAMES, recorded

    taken = total = 0
    for name in ADAPTER_NAMES:
        for event in recorded(name).logs:
            total += 1
            taken += check(event)
            # the same events with a few hostile values in place
            for key, value in (("path", '/a,"b":c'), ("user_agent", "x,"), ("client", ":1")):
                check({**event, key: value})
    assert total > 20
    assert taken >= total // 2  # the request lines of successful requests are flat


class Color(enum.Enum):
    RED = "red"


EDGE_VALUES: list[Any] = [
    "", ",", ":", '"', '","', '":"', "\\", '\\"', "a,", ",a", ":a", "a:", '",', ',"', '":',
    "é€𝄞", "\u2028\u2029\x7f", "\x00\x01\x08\x0c\x1f\t\n\r", "\ud800", "/", "null", "NaN",
    0, -1, 2**63 - 1, 2**63, -(2**63), 2**64, -(2**64) - 1, 10**30, True, False, None,
    0.0, -0.0, 1.5, 0.1, 1 / 3, 1e-4, 9.99e-5, 1e-5, 1e-7, 1e15, 1e16, 1e17, 1e22, 1e300,
    5e-324, sys.float_info.max, math.inf, -math.inf, math.nan,
    [1, 2], (1, 2), {"a": 1}, {"a": ","}, datetime.datetime(2026, 1, 2, 3, 4, 5),
    uuid.UUID(int=5), b"bytes", Color.RED, type("S", (str,), {})("sub"),
    type("I", (int,), {})(3), type("F", (float,), {})(2.5),
]  # fmt: skip


@pytest.mark.parametrize("value", EDGE_VALUES, ids=repr)
def test_edge_values(value: Any) -> None:
    check({"timestamp": "2026-11-29T22:18:10.883Z", "level": "info", "v": value})
    check({"v": value})
    check({"v": value, "w": "x"})
    check({"k,": value, '"': 1, ":": 2})


def test_non_str_keys_and_empty_events() -> None:
    assert check({}) is True
    check({1: "a"})
    check({"": ""})
    check({"": "", "a": ""})
    check({None: 1, "a": 2})


def test_random_flat_events() -> None:
    rng = random.Random(16)
    alphabet = 'ab,:"\\ {}[]\x01\n/é0e-.'
    for _ in range(20_000):
        event: dict[Any, Any] = {}
        for _ in range(rng.randint(0, 6)):
            key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            kind = rng.random()
            if kind < 0.6:
                value: Any = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
            elif kind < 0.8:
                value = rng.choice([rng.randint(-1000, 1000), True, None, 2**64])
            else:
                value = rng.choice([rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-8, 20), math.nan])
            event[key] = value
        check(event)
