"""Incoming trace context: the configured propagators, a trust policy, and extraction that
never fails.

Each trace-context format (``w3c``, ``b3``, ``b3multi``) is read on its own. When two of them
carry different contexts the headers conflict and none is believed (a new root trace starts);
when they agree, the first in the configured order wins. A header longer than
:data:`MAX_HEADER_LENGTH` is ignored. The trust policy then decides what the caller's context
is worth: ``continue`` it, ``restart`` (a new root trace with a span link to the caller) or
``ignore`` it (neither trace context nor baggage is kept).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Final

from mypy_extensions import mypyc_attr
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Link, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..config._model import TrustSettings
from ._b3 import B3MultiPropagator, B3SinglePropagator

__all__ = ["MAX_HEADER_LENGTH", "Extractor", "build_propagator"]

_log: Final = logging.getLogger("telemetry_web.tracing")

_FACTORIES: dict[str, type[TextMapPropagator]] = {
    "w3c": TraceContextTextMapPropagator,
    "b3": B3SinglePropagator,
    "b3multi": B3MultiPropagator,
    "baggage": W3CBaggagePropagator,
}
# Only these headers can carry context; a request with none of them skips extraction entirely.
_HEADERS = {
    "w3c": ("traceparent", "tracestate"),
    "b3": ("b3",),
    "b3multi": ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"),
    "baggage": ("baggage",),
}
# W3C baggage allows 8192 bytes in total; no trace-context header needs more.
MAX_HEADER_LENGTH: Final = 8192
_EMPTY: Final = Context()
_NO_LINKS: Final[tuple[Link, ...]] = ()
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _QuietWhileExtracting(logging.Filter):
    """Drops the SDK's per-header warnings ("Invalid baggage entry …") raised while a request's
    headers are read: a client must not be able to write a log line per request."""

    def __init__(self) -> None:
        super().__init__()
        self.active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "on", False)


_QUIET = _QuietWhileExtracting()
for _name in ("opentelemetry.baggage.propagation", "opentelemetry.trace.span",
              "opentelemetry.trace.propagation.tracecontext"):  # fmt: skip
    logging.getLogger(_name).addFilter(_QUIET)


def build_propagator(names: Sequence[str]) -> TextMapPropagator:
    """Inject (and extract) in the configured formats, in the configured order."""
    return CompositePropagator([_FACTORIES[name]() for name in names if name in _FACTORIES])


# Compiled (scripts/compile.py) as a class that Python code may extend: the mesh's does.
@mypyc_attr(allow_interpreted_subclasses=True)
class Extractor:
    """Turns request headers into a parent context; malformed, oversized or conflicting headers
    give a new root trace, and an untrusted caller's context is restarted or ignored."""

    def __init__(self, names: Sequence[str], trust: TrustSettings | None = None) -> None:
        self.propagator = build_propagator(names)
        unique = list(dict.fromkeys(names))
        self._trace_formats = [
            (name, _FACTORIES[name]())
            for name in unique
            if name in _FACTORIES and name != "baggage"
        ]
        self._baggage = W3CBaggagePropagator() if "baggage" in unique else None
        trust = trust or TrustSettings()
        self.policy = trust.type
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in trust.trusted_networks
        )
        self._trusted_headers = {k.lower(): v for k, v in trust.trusted_headers.items()}
        self.header_names = frozenset(
            {h for name in unique for h in _HEADERS.get(name, ())} | set(self._trusted_headers)
        )
        self._context_headers = frozenset(h for name in unique for h in _HEADERS.get(name, ()))

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The caller's context as the headers state it (no trust policy applied)."""
        if self._context_headers.isdisjoint(headers):  # the usual request: no caller's trace
            return _EMPTY
        _QUIET.active.on = True
        try:
            return self._extract(headers)
        except Exception:  # a propagator bug must not turn a request into a 500
            _log.debug("ignoring unreadable trace context headers", exc_info=True)
            return _EMPTY
        finally:
            _QUIET.active.on = False

    def resolve(
        self, headers: Mapping[str, str], client: str | None
    ) -> tuple[Context, tuple[Link, ...]]:
        """The parent context for a request span and its links, after the trust policy."""
        parent = self.extract(headers)
        if parent is _EMPTY or self.policy == "continue" or self._trusted(headers, client):
            return parent, _NO_LINKS
        if self.policy == "ignore":
            return _EMPTY, _NO_LINKS
        caller = get_current_span(parent).get_span_context()
        if not caller.is_valid:
            return _EMPTY, _NO_LINKS
        return _EMPTY, (Link(caller, {"telemetry_web.link": "untrusted_caller"}),)

    def _trusted(self, headers: Mapping[str, str], client: str | None) -> bool:
        for name, expected in self._trusted_headers.items():
            value = headers.get(name)
            if value is not None and hmac.compare_digest(value.encode(), expected.encode()):
                return True
        if self._networks and client:
            try:
                address = ipaddress.ip_address(client)
            except ValueError:
                return False
            return any(address in network for network in self._networks)
        return False

    def _extract(self, headers: Mapping[str, str]) -> Context:
        carrier = {
            k: v
            for k, v in headers.items()
            if k in self._context_headers and len(v) <= MAX_HEADER_LENGTH
        }
        chosen: Context | None = None
        chosen_ids: tuple[int, int] | None = None
        for _name, propagator in self._trace_formats:
            context = propagator.extract(carrier, Context())
            span_context = get_current_span(context).get_span_context()
            if not span_context.is_valid:
                continue
            ids = (span_context.trace_id, span_context.span_id)
            if chosen_ids is None:
                chosen, chosen_ids = context, ids
            elif ids != chosen_ids:
                _log.debug("ignoring conflicting trace context headers")
                chosen = None
                break
        result = chosen if chosen is not None else Context()
        if self._baggage is not None and "baggage" in carrier:
            result = self._baggage.extract(carrier, result)
        return result if (chosen is not None or "baggage" in carrier) else _EMPTY
