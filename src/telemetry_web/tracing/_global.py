"""One process-wide tracer provider that follows whichever Telemetry was configured last.

OpenTelemetry lets the global provider be set once per process; reconfiguring telemetry (tests,
hot reload, ``configure_tracing`` called again) must still reach code that asked
``trace.get_tracer(__name__)`` earlier, so the global provider delegates.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, Span, Tracer, TracerProvider

__all__ = ["GLOBAL_PROVIDER", "install_global_provider"]

_log = logging.getLogger("telemetry_web.tracing")


class _SwitchingTracer(Tracer):
    def __init__(
        self, owner: _GlobalProvider, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._owner = owner
        self._args = args
        self._kwargs = kwargs
        self._for: TracerProvider | None = None
        self._tracer: Tracer = NoOpTracer()

    def _current(self) -> Tracer:
        provider = self._owner.delegate
        if provider is not self._for:
            self._tracer = (
                provider.get_tracer(*self._args, **self._kwargs) if provider else NoOpTracer()
            )
            self._for = provider
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


class _GlobalProvider(TracerProvider):
    def __init__(self) -> None:
        self.delegate: TracerProvider | None = None

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _SwitchingTracer(self, args, kwargs)


GLOBAL_PROVIDER = _GlobalProvider()


def install_global_provider(provider: TracerProvider) -> bool:
    """Route the global OpenTelemetry provider to ``provider``; False if another one owns it."""
    current = trace.get_tracer_provider()
    if current is not GLOBAL_PROVIDER:
        if type(current).__name__ != "ProxyTracerProvider":
            _log.warning(
                "another OpenTelemetry tracer provider is already global (%s); telemetry-web's "
                "request spans use their own provider, other libraries' spans go to that one",
                type(current).__name__,
            )
            return False
        trace.set_tracer_provider(GLOBAL_PROVIDER)
    GLOBAL_PROVIDER.delegate = provider
    return True
