"""The gateway's runtime: hooks for any Python gateway, and the upstream call they record."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import __version__
from .. import semconv as sc
from ..instrumentors._base import end_span
from ..instrumentors._http import describe_url

if TYPE_CHECKING:
    import httpx

    from .._engine import Telemetry
    from .._lifecycle import ActiveRequest

__all__ = ["Gateway", "UpstreamCall"]

_perf = time.perf_counter


class UpstreamCall:
    """One call to an upstream, retries included: its CLIENT span and its start time."""

    __slots__ = ("attempts", "method", "span", "started", "upstream")

    def __init__(self, upstream: str, method: str, span: Span | None) -> None:
        self.upstream = upstream
        self.method = method
        self.span = span
        self.attempts = 1
        self.started = _perf()

    def retry(self, *, reason: str) -> None:
        """Record that the attempt just made failed with ``reason`` and another one follows."""
        if self.span is not None and self.span.is_recording():
            self.span.add_event(
                sc.EVENT_GATEWAY_RETRY, {"attempt": self.attempts, "reason": reason}
            )
        self.attempts += 1

    def timeout(self, seconds: float | None) -> None:
        """Record that the current attempt got no answer within ``seconds``."""
        if self.span is not None and self.span.is_recording():
            attributes: dict[str, Any] = {"attempt": self.attempts}
            if seconds is not None:
                attributes["timeout"] = seconds
            self.span.add_event(sc.EVENT_GATEWAY_TIMEOUT, attributes)


class Gateway:
    """A Telemetry used as a gateway: the request and upstream hooks (no HTTP library needed).

    A gateway served by ``TelemetryMiddleware`` (or another adapter) has its requests recorded
    already and only calls the upstream hooks; one with its own server loop calls
    :meth:`on_request_start`/:meth:`on_request_end` around each request too.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.requests = (
            telemetry.create_counter(sc.GATEWAY_UPSTREAM_REQUESTS)
            .with_description("Calls to upstreams, by upstream name and final status.")
            .with_label_keys(sc.LABEL_UPSTREAM, sc.LABEL_STATUS)
            .register()
        )
        self.duration = (
            telemetry.create_histogram(sc.GATEWAY_UPSTREAM_DURATION)
            .with_description("Duration of calls to upstreams, retries included, in seconds.")
            .with_label_keys(sc.LABEL_UPSTREAM)
            .with_buckets(sc.DURATION_BUCKETS)
            .register()
        )

    # --- the request the gateway serves ---------------------------------------------------------

    def on_request_start(
        self,
        *,
        method: str,
        path: str,
        route: str,
        headers: Mapping[str, str] | None = None,
        client: str | None = None,
        scheme: str = "http",
        query: str = "",
    ) -> ActiveRequest:
        """Start recording a request (its SERVER span becomes current); ``route`` is the
        template the route policies match."""
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        return self.telemetry.lifecycle.begin(
            method=method, scheme=scheme, path=path, query=query, route=route,
            headers=lowered, client=client,
        )  # fmt: skip

    def on_request_end(
        self,
        request: ActiveRequest,
        status: int,
        *,
        request_size: int = 0,
        response_size: int = 0,
        exception: BaseException | None = None,
    ) -> None:
        """Finish recording ``request``: span, metrics and request log line."""
        request.finish(
            status, request_size=request_size, response_size=response_size, exception=exception
        )

    # --- the calls it makes upstream ------------------------------------------------------------

    def on_upstream_start(
        self,
        upstream: str,
        *,
        method: str,
        url: str,
        headers: MutableMapping[str, str] | None = None,
    ) -> UpstreamCall:
        """Start a call to ``upstream`` (a name, the metrics' label): a CLIENT span under the
        current one, and the trace context written into ``headers`` for the upstream."""
        span = self._start_span(upstream, method, url)
        if headers is not None:
            current = otel_context.get_current()
            context = trace.set_span_in_context(span, current) if span is not None else current
            self.telemetry.extractor.propagator.inject(headers, context=context)
        return UpstreamCall(upstream, method, span)

    def on_upstream_end(
        self,
        call: UpstreamCall,
        *,
        status: int | None = None,
        exception: BaseException | None = None,
        timed_out: bool = False,
    ) -> None:
        """Finish ``call`` with the final response's ``status``, or with no response
        (``timed_out``, or ``exception``): the span ends, the metrics count it."""
        label = (
            str(status) if status is not None
            else sc.GATEWAY_STATUS_TIMEOUT if timed_out
            else sc.HTTP_CLIENT_STATUS_ERROR
        )  # fmt: skip
        self.requests.labels(call.upstream, label).inc()
        self.duration.labels(call.upstream).observe(_perf() - call.started)
        span = call.span
        if span is None:
            return
        if span.is_recording():
            if call.attempts > 1:
                span.set_attribute(sc.ATTR_HTTP_RESEND_COUNT, call.attempts - 1)
            if status is not None:
                span.set_attribute(sc.ATTR_HTTP_STATUS, status)
                if status >= 400:
                    span.set_attribute(sc.ATTR_ERROR_TYPE, str(status))
                    span.set_status(Status(StatusCode.ERROR))
            elif timed_out:  # the timeout event says it all: no exception event on top
                span.set_attribute(sc.ATTR_ERROR_TYPE, sc.GATEWAY_STATUS_TIMEOUT)
                span.set_status(Status(StatusCode.ERROR, "upstream timed out"))
                exception = None
        end_span(span, exception)

    async def send(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        *,
        upstream: str,
        retries: int = 0,
        retry_statuses: Collection[int] = (502, 503, 504),
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send ``request`` to ``upstream`` with httpx, through the upstream hooks: retried
        ``retries`` times on a connection error or a status in ``retry_statuses`` (a ``retry``
        event each), every attempt cut at ``timeout`` seconds (a ``timeout`` event, then
        ``httpx.TimeoutException``). The request's body must have been read."""
        from ._httpx import send_upstream

        return await send_upstream(
            self, client, request, upstream=upstream, retries=retries,
            retry_statuses=retry_statuses, timeout=timeout,
        )  # fmt: skip

    def _start_span(self, upstream: str, method: str, url: str) -> Span | None:
        tracer = self.telemetry.tracer_provider
        parent = trace.get_current_span()
        if tracer is None or not parent.get_span_context().is_valid:
            return None  # as the instrumentors: no trace of our own outside a request
        target = describe_url(url, self.telemetry.lifecycle.redact_query)
        known = method if method in sc.KNOWN_METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            sc.ATTR_GATEWAY_UPSTREAM: upstream,
            sc.ATTR_HTTP_METHOD: known,
            sc.ATTR_URL_FULL: target.full,
            sc.ATTR_SERVER_ADDRESS: target.address,
        }
        if target.port is not None:
            attributes[sc.ATTR_SERVER_PORT] = target.port
        return tracer.get_tracer(sc.INSTRUMENTATION_GATEWAY, __version__).start_span(
            "HTTP" if known == "_OTHER" else known, kind=SpanKind.CLIENT, attributes=attributes
        )
