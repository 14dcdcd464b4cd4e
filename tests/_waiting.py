"""Waiting for background work (writer threads, exporters, server processes) in tests.

``wait_until`` fails the test when the condition does not come true in time; ``poll`` returns
the last value read either way, for a test that asserts on what it got.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(what: object) -> str:
    text = what() if callable(what) else what
    return f": {text}" if text else ""


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.02, what: object = ""
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail the test
    after ``timeout`` seconds, naming ``what`` (a text, or a callable giving one)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s{_describe(what)}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, *, interval: float = 0.02
) -> None:
    """:func:`wait_until` without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def poll(
    read: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """``read()`` until ``done`` holds for what it returned or ``timeout`` seconds have passed;
    the last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)
