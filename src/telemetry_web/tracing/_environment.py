"""The SDK's span limits from the environment, made unable to fail a provider.

The SDK's ``SpanLimits`` raise ``ValueError`` for an ``OTEL_*_LIMIT`` variable that is not a
non-negative integer (or ``unset``); :func:`span_limits` uses the default for such a variable
instead, with one warning.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.trace import SpanLimits

from .._otel_env import valid_limit, warn_variable

__all__ = ["span_limits"]

# SpanLimits keyword for each variable it reads, and the value that means "the SDK's default".
_LIMITS = {
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("max_attributes", 128),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("max_span_attributes", 128),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("max_event_attributes", 128),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("max_link_attributes", 128),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("max_events", 128),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("max_links", 128),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_attribute_length", SpanLimits.UNSET),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_span_attribute_length", SpanLimits.UNSET),
}


def span_limits() -> SpanLimits:
    """The SDK's limits from the environment; a variable that is not a non-negative integer
    (or ``unset``) gives the default, with one warning."""
    given: dict[str, int] = {}
    for name, (keyword, default) in _LIMITS.items():
        raw = os.environ.get(name)
        if raw is None:
            continue
        if valid_limit(raw):
            continue
        given[keyword] = default
        shown = "no limit" if default == SpanLimits.UNSET else str(default)
        warn_variable(
            name, raw, f"ignoring {name}={raw!r}: expected a non-negative integer; using {shown}"
        )
    return SpanLimits(**given)
