"""The RED metrics of HTTP requests, with label children cached per (method, route, status).

Two namings: the default (``http_requests_total``, ``http_request_duration_seconds`` …) and,
with ``metrics.naming: otel``, the stable OpenTelemetry HTTP conventions as Prometheus translates
them (``http_server_request_duration_seconds{http_request_method,http_route,
http_response_status_code}``), so dashboards built for OpenTelemetry contrib work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import semconv as sc
from ..config import MetricsSettings
from ._registry import MetricSet

__all__ = ["HttpMetrics"]

# Past this many (method, route, status) children the cache stops growing; prometheus-client
# keeps its own children anyway, this only bounds our shortcut table.
_CACHE_LIMIT = 10_000


class HttpMetrics:
    """Records one request's counters and histograms, and hands out in-progress gauge children."""

    def __init__(
        self, metrics: MetricSet, settings: MetricsSettings, *, exemplars: bool = True
    ) -> None:
        # prometheus-client drops exemplars in multiprocess mode: skip building them there.
        self.exemplars = exemplars
        buckets = settings.duration_buckets or sc.DURATION_BUCKETS
        self.otel_naming = settings.naming == "otel"
        if self.otel_naming:
            keys: tuple[str, ...] = (
                sc.OTEL_LABEL_METHOD,
                sc.OTEL_LABEL_ROUTE,
                sc.OTEL_LABEL_STATUS,
            )
            self._requests = None
            self._duration = _histogram(
                metrics,
                sc.OTEL_HTTP_SERVER_DURATION,
                "Duration of HTTP server requests.",
                keys,
                buckets,
            )
            self._in_progress = (
                metrics.builder("gauge", sc.OTEL_HTTP_SERVER_ACTIVE)
                .with_description("Number of active HTTP server requests.")
                .with_label_keys(sc.OTEL_LABEL_METHOD, sc.OTEL_LABEL_SCHEME)
                .with_multiprocess_mode("livesum")
                .register()
            )
            sizes = (sc.OTEL_HTTP_SERVER_REQUEST_SIZE, sc.OTEL_HTTP_SERVER_RESPONSE_SIZE)
            size_help = (
                "Size of HTTP server request bodies.",
                "Size of HTTP server response bodies.",
            )
        else:
            keys = (sc.LABEL_METHOD, sc.LABEL_ROUTE, sc.LABEL_STATUS)
            self._requests = (
                metrics.builder("counter", sc.HTTP_REQUESTS_TOTAL)
                .with_description("HTTP requests handled, by method, route template and status.")
                .with_label_keys(*keys)
                .register()
            )
            self._duration = _histogram(
                metrics, sc.HTTP_REQUEST_DURATION,
                "Time from receiving an HTTP request to sending the last byte of its response.",
                keys, buckets,
            )  # fmt: skip
            self._in_progress = (
                metrics.builder("gauge", sc.HTTP_REQUESTS_IN_PROGRESS)
                .with_description("HTTP requests being handled now.")
                .with_label_keys(sc.LABEL_METHOD, sc.LABEL_ROUTE)
                .with_multiprocess_mode("livesum")
                .register()
            )
            sizes = (sc.HTTP_REQUEST_SIZE, sc.HTTP_RESPONSE_SIZE)
            size_help = ("Size of HTTP request bodies.", "Size of HTTP response bodies.")
        # Opt-in (metrics.size_histograms): 18 samples per (method, route, status) that most
        # dashboards never read, and half the /metrics body under several workers.
        self.size_histograms = settings.size_histograms
        self._request_size: Any = None
        self._response_size: Any = None
        if self.size_histograms:
            self._request_size, self._response_size = (
                _histogram(metrics, name, text, keys, sc.SIZE_BUCKETS)
                for name, text in zip(sizes, size_help, strict=True)
            )
        self._finished: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}

    def in_progress(self, method: str, route: str, scheme: str) -> Any:
        """The gauge child to ``inc()`` now and ``dec()`` when the request ends."""
        second = scheme if self.otel_naming else route
        return self._in_progress.labels(method, second)

    def record(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        request_size: int,
        response_size: int,
        exemplar: Mapping[str, str] | None,
    ) -> None:
        key = (method, route, status)
        children = self._finished.get(key)
        if children is None:
            children = self._children(key)
        requests, duration_hist, request_size_hist, response_size_hist = children
        if requests is not None:
            requests.inc()
        duration_hist.observe(duration, exemplar if self.exemplars else None)
        if self.size_histograms:
            request_size_hist.observe(request_size)
            response_size_hist.observe(response_size)

    def _children(self, key: tuple[str, str, int]) -> tuple[Any, Any, Any, Any]:
        values = (key[0], key[1], str(key[2]))
        children = (
            self._requests.labels(*values) if self._requests is not None else None,
            self._duration.labels(*values),
            self._request_size.labels(*values) if self._request_size is not None else _NOT_KEPT,
            self._response_size.labels(*values) if self._response_size is not None else _NOT_KEPT,
        )
        if len(self._finished) < _CACHE_LIMIT:
            self._finished[key] = children
        return children


class _NotKept:
    """The body-size histogram children when ``metrics.size_histograms`` is off."""

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        pass


_NOT_KEPT = _NotKept()


def _histogram(
    metrics: MetricSet, name: str, help_text: str, keys: tuple[str, ...], buckets: Any
) -> Any:
    return (
        metrics.builder("histogram", name)
        .with_description(help_text)
        .with_label_keys(*keys)
        .with_buckets(buckets)
        .register()
    )
