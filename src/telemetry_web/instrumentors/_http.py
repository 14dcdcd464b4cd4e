"""What the outbound HTTP instrumentors (``httpx``, ``requests``) share: the client span, the
headers carrying the trace context, and ``http_client_request_duration_seconds``.

Per call: a CLIENT span named after the method, child of the current span (none without one,
unless ``root_spans=True``), current while the call runs; the current context injected in the
configured formats (``tracing.propagation``) into a copy of the request, so the caller's request
and headers are never changed; the histogram observed through cached label children. Calls made
under OpenTelemetry's ``suppress_instrumentation()`` (or ``suppress_http_instrumentation()``) go
straight through.
"""

from __future__ import annotations

import time
import warnings
import weakref
from abc import abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.trace import Span, Status, StatusCode

from .. import semconv as sc
from ..metrics import Metric
from ._base import BaseInstrumentor, Patch, Switch, end_span, wrap

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = ["HttpClientInstrumentor", "client_duration", "describe_url"]

_perf = time.perf_counter
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def client_duration(telemetry: Telemetry) -> Metric:
    """``http_client_request_duration_seconds{method,server_address,status}`` of ``telemetry``
    (one metric, whichever instrumentor registers it first)."""
    return (
        telemetry.metrics.builder("histogram", sc.HTTP_CLIENT_REQUEST_DURATION)
        .with_description("Duration of outbound HTTP requests, in seconds.")
        .with_label_keys(sc.LABEL_METHOD, sc.LABEL_SERVER_ADDRESS, sc.LABEL_STATUS)
        .with_buckets(sc.DURATION_BUCKETS)
        .register()
    )


class Target(NamedTuple):
    """Where a request goes: ``url.full`` (credentials and sensitive query values redacted),
    ``server.address`` and ``server.port`` (the scheme's default when the URL names none)."""

    full: str
    address: str
    port: int | None


def describe_url(url: str, redact_query: Callable[[str], str]) -> Target:
    parts = urlsplit(url)
    address = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number: the library will refuse the URL
        port = None
    netloc = parts.netloc
    if "@" in netloc:  # user:password@ never reaches a span
        netloc = f"{sc.REDACTED}:{sc.REDACTED}@{netloc.rpartition('@')[2]}"
    query = redact_query(parts.query) if parts.query else ""
    full = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return Target(full, address, port)


class _Call(NamedTuple):
    started: float
    span: Span | None
    method: str
    address: str


class HttpClientInstrumentor(BaseInstrumentor):
    """Instrument/uninstrument bookkeeping and recording; a subclass names the classes to wrap,
    how to read a request and how to copy one with more headers."""

    client_types: tuple[type, ...] = ()

    def __init__(self, *, telemetry: Telemetry, root_spans: bool = False) -> None:
        super().__init__(telemetry=telemetry, root_spans=root_spans)
        self.http_duration = client_duration(telemetry)
        self._clients: weakref.WeakKeyDictionary[Any, list[Patch]] = weakref.WeakKeyDictionary()

    # --- what a subclass provides ---------------------------------------------------------------

    @abstractmethod
    def _global_targets(self) -> list[tuple[type, str, bool]]:
        """(class, attribute, is_async) wrapped by ``instrument()``."""

    @abstractmethod
    def _is_async_client(self, client: Any) -> bool:
        """Whether ``client`` is the library's async client."""

    @abstractmethod
    def _method_and_url(self, request: Any) -> tuple[str, str]:
        """The request's method and full URL."""

    @abstractmethod
    def _with_headers(self, request: Any, headers: dict[str, str]) -> Any:
        """A copy of ``request`` with ``headers`` added (replacing the same names)."""

    # --- public API -----------------------------------------------------------------------------

    def instrument(self, *, client: Any | Iterable[Any] | None = None) -> None:
        """Instrument every client (``client=None``), or only the given ones.

        Idempotent: instrumenting what is already instrumented warns and does nothing. With
        every client instrumented, naming one adds nothing.
        """
        with self._lock:
            if client is None:
                if self._claim_global():
                    for target, attribute, is_async in self._global_targets():
                        self._wrap(target, attribute, self._wrapper(is_async))
                return
            for one in self._client_list(client):
                if self._global or one in self._clients:
                    warnings.warn(
                        f"{one!r} is already instrumented; nothing more to do",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    continue
                wrapper = self._wrapper(self._is_async_client(one))
                self._clients[one] = [wrap(one, "send", wrapper, Switch())]

    def uninstrument(self, *, client: Any | Iterable[Any] | None = None) -> None:
        """Undo :meth:`instrument`: everything (``client=None``), or the given clients."""
        with self._lock:
            if client is None:
                if not self._global and not self._clients:
                    warnings.warn(
                        f"{type(self).__name__}.uninstrument(): nothing is instrumented",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                if self._release_global():
                    self._unwrap_all(self._patches)
                for one in list(self._clients):
                    self._unwrap_all(self._clients.pop(one))
                return
            for one in self._client_list(client):
                patches = self._clients.pop(one, None)
                if patches is not None:
                    self._unwrap_all(patches)

    def _client_list(self, clients: Any) -> list[Any]:
        single = isinstance(clients, self.client_types) or not isinstance(clients, Iterable)
        items = [clients] if single else list(clients)
        for item in items:
            if not isinstance(item, self.client_types):
                names = " or ".join(
                    f"{t.__module__.partition('.')[0]}.{t.__qualname__}" for t in self.client_types
                )
                raise TypeError(f"instrument(client=...) takes {names}, got {type(item).__name__}")
        return items

    # --- wrappers -------------------------------------------------------------------------------

    def _wrapper(self, is_async: bool) -> Any:
        return self._traced_send_async if is_async else self._traced_send

    def _traced_send(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not is_http_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        call, args, kwargs, token = self._begin(args, kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(call, token, None, exc)
            raise
        self._end(call, token, response, None)
        return response

    async def _traced_send_async(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not is_http_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        call, args, kwargs, token = self._begin(args, kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(call, token, None, exc)
            raise
        self._end(call, token, response, None)
        return response

    # --- recording ------------------------------------------------------------------------------

    def _begin(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[_Call | None, tuple[Any, ...], dict[str, Any], object | None]:
        """Start the span and put the context into a copy of the request: (call, the arguments
        to send, the context token to detach). Never raises (the request is sent regardless)."""
        try:
            in_kwargs = "request" in kwargs
            request = kwargs["request"] if in_kwargs else args[0]
            method, url = self._method_and_url(request)
            target = describe_url(url, self.telemetry.lifecycle.redact_query)
            known = method if method in sc.KNOWN_METHODS else "_OTHER"
            attributes: dict[str, Any] = {
                sc.ATTR_HTTP_METHOD: known,
                sc.ATTR_URL_FULL: target.full,
                sc.ATTR_SERVER_ADDRESS: target.address,
            }
            if known != method:
                attributes[sc.ATTR_HTTP_METHOD_ORIGINAL] = method
            if target.port is not None:
                attributes[sc.ATTR_SERVER_PORT] = target.port
            span = self.start_span("HTTP" if known == "_OTHER" else known, attributes)
            call = _Call(_perf(), span, known, target.address)
        except Exception as exc:
            self.internal_error("begin", exc)
            return None, args, kwargs, None
        token = None
        try:
            current = otel_context.get_current()
            context = trace.set_span_in_context(span, current) if span is not None else current
            headers: dict[str, str] = {}
            self.telemetry.extractor.propagator.inject(headers, context=context)
            if headers:
                copy = self._with_headers(request, headers)
                if in_kwargs:
                    kwargs = {**kwargs, "request": copy}
                else:
                    args = (copy, *args[1:])
            if span is not None:
                token = otel_context.attach(context)
        except Exception as exc:
            self.internal_error("inject", exc)
        return call, args, kwargs, token

    def _end(
        self,
        call: _Call | None,
        token: object | None,
        response: Any,
        exception: BaseException | None,
    ) -> None:
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception as exc:  # pragma: no cover - detach logs rather than raises
                self.internal_error("detach", exc)
        if call is None:
            return
        try:
            duration = _perf() - call.started
            status_code = getattr(response, "status_code", None) if exception is None else None
            status = str(status_code) if status_code is not None else sc.HTTP_CLIENT_STATUS_ERROR
            self.http_duration.labels(call.method, call.address, status).observe(duration)
            span = call.span
            if span is not None:
                if status_code is not None and span.is_recording():
                    span.set_attribute(sc.ATTR_HTTP_STATUS, status_code)
                    if status_code >= 400:  # client spans: 4xx and 5xx are errors
                        span.set_attribute(sc.ATTR_ERROR_TYPE, str(status_code))
                        span.set_status(Status(StatusCode.ERROR))
                end_span(span, exception)
        except Exception as exc:
            self.internal_error("end", exc)
