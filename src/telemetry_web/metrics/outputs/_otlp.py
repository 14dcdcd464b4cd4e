"""OTLP metrics (``metrics.exporters: - type: otlp``): the registry sent to an OpenTelemetry
Collector as ``ExportMetricsServiceRequest``, over HTTP/protobuf or gRPC.

Every ``interval`` the whole registry (in multiprocess mode the merged values of every worker,
pushed by one process) becomes one request with one ``ResourceMetrics``:

- **Resource**: the spans' resource (``tracing/_provider.py`` ``build_resource``: service.name,
  service.version, deployment.environment, process.pid, service.instance.id of the pushing
  process, ``tracing.resource_attributes``), so a collector joins metrics and traces.
- **Scope**: ``telemetry_web`` and the package version.
- **Metrics**, named as ``/metrics`` shows them (``http_requests_total``: a Prometheus-backed
  collector adds no second suffix, one that adds none keeps the same series names), all
  with CUMULATIVE temporality (what Prometheus stores): counters as monotonic ``Sum``, gauges
  (and info, stateset, untyped families) as ``Gauge``, histograms as ``Histogram`` with the
  finite ``le`` bounds as ``explicit_bounds`` and per-bucket counts (cumulative ``_bucket``
  values differenced, the ``+Inf`` bucket last), summaries as ``Summary`` (count and sum).
- **start_time_unix_nano**: the family's ``_created`` sample where prometheus-client gives one
  (one process); otherwise the time this process first pushed the series (merged workers have
  no ``_created``), moved to now when the value goes down (a reset, as OTLP wants).
- **Attributes**: the sample's labels as strings. The constant labels ``service`` and
  ``environment`` are left out when they carry the configured values: they are the resource's
  ``service.name`` and ``deployment.environment``, and a point attribute would give a
  Prometheus-backed collector the same fact twice. The other constant ``labels`` (``team``)
  stay on every point, as on ``/metrics``.

Transports: HTTP POSTs the serialized request with ``Content-Type: application/x-protobuf``
through ``_http.post`` (429/5xx retried, other 4xx rejected). gRPC calls
``MetricsService/Export`` with a deadline of ``timeout``; the codes OTLP calls retryable
(UNAVAILABLE, RESOURCE_EXHAUSTED with the server's ``RetryInfo`` delay, DEADLINE_EXCEEDED,
CANCELLED, ABORTED, OUT_OF_RANGE, DATA_LOSS) are retried, the others (INVALID_ARGUMENT,
UNAUTHENTICATED, ...) rejected. The channel is made in the process that pushes (a forked
worker makes its own) and closed at shutdown.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ... import __version__
from ..._redaction import scrub_text
from ...errors import MissingExtraError
from ._http import post, where
from ._push import ExportError, PushOutput, Snapshot

__all__ = ["DEFAULT_GRPC_ENDPOINT", "DEFAULT_HTTP_ENDPOINT", "OtlpMetricsOutput", "encode_request"]

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318/v1/metrics"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
SCOPE = "telemetry_web"
_SIGNAL_PATH = "/v1/metrics"
_CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_FEATURE = "metrics.exporters (type 'otlp')"
# The OTLP/gRPC codes a client retries (opentelemetry-proto docs/specification.md, "Failures").
_RETRYABLE_CODES = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE",
                              "UNAVAILABLE", "DATA_LOSS", "RESOURCE_EXHAUSTED"})  # fmt: skip


def require_proto(protocol: str) -> None:
    """Raise :class:`MissingExtraError` now (at configure time) when the ``otlp`` extra is
    missing: ``opentelemetry-proto`` for both protocols, ``grpcio`` for ``grpc``."""
    try:
        import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2  # noqa: F401

        if protocol == "grpc":
            import grpc  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise MissingExtraError(_FEATURE, "opentelemetry-exporter-otlp", "otlp") from None


def resolve_endpoint(endpoint: str | None, protocol: str) -> str:
    """The URL to send to: the default per protocol, and for HTTP the ``/v1/metrics`` path added
    to a collector address (``http://collector:4318``), as the trace exporter adds
    ``/v1/traces``."""
    if protocol == "grpc":
        return endpoint or DEFAULT_GRPC_ENDPOINT
    if not endpoint:
        return DEFAULT_HTTP_ENDPOINT
    if endpoint.rstrip("/").endswith(_SIGNAL_PATH):
        return endpoint
    return endpoint.rstrip("/") + _SIGNAL_PATH


# --- the request -----------------------------------------------------------------------------


class _StartTimes:
    """A stable ``start_time_unix_nano`` per series in this process, reset when the value
    goes down."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._seen: dict[tuple[Any, ...], tuple[int, float]] = {}

    def start(self, key: tuple[Any, ...], value: float, now_ns: int, created: float | None) -> int:
        if self._pid != os.getpid():  # a forked worker starts its own series
            self._pid, self._seen = os.getpid(), {}
        known = self._seen.get(key)
        if created is not None:
            start = int(created * 1e9)
        elif known is None or value < known[1]:
            start = now_ns
        else:
            start = known[0]
        self._seen[key] = (start, value)
        return start


def _any_value(value: Any, pb: Any) -> Any:
    if isinstance(value, bool):
        return pb.AnyValue(bool_value=value)
    if isinstance(value, int):
        return pb.AnyValue(int_value=value)
    if isinstance(value, float):
        return pb.AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        items = [_any_value(item, pb) for item in value]
        return pb.AnyValue(array_value=pb.ArrayValue(values=items))
    return pb.AnyValue(string_value=str(value))


def _attributes(labels: Mapping[str, Any], pb: Any) -> list[Any]:
    return [pb.KeyValue(key=k, value=_any_value(v, pb)) for k, v in labels.items()]


def _point_labels(labels: Mapping[str, str], skip: Mapping[str, str]) -> dict[str, str]:
    return {k: str(v) for k, v in labels.items() if skip.get(k) != v}


def _time_ns(sample: Any, default_ns: int) -> int:
    return int(float(sample.timestamp) * 1e9) if sample.timestamp is not None else default_ns


def _created(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): float(s.value) for s in family.samples
            if s.name.endswith("_created")}  # fmt: skip


def _by_labels(samples: list[Any], drop: str = "") -> dict[tuple[tuple[str, str], ...], list[Any]]:
    """``samples`` grouped by their labels (``drop`` left out), in order."""
    groups: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for sample in samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != drop))
        groups.setdefault(key, []).append(sample)
    return groups


def _histogram_point(samples: list[Any], family_name: str) -> tuple[Any, ...]:
    """``(count, sum, bucket_counts, explicit_bounds)`` from one series' samples."""
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for sample in samples:
        if sample.name == family_name + "_bucket":
            buckets.append((float(sample.labels["le"]), float(sample.value)))
        elif sample.name == family_name + "_count":
            count = float(sample.value)
        elif sample.name == family_name + "_sum":
            total = float(sample.value)
    buckets.sort()
    bounds = [le for le, _ in buckets if not math.isinf(le)]
    counts: list[int] = []
    previous = 0.0
    for _le, cumulative in buckets:
        counts.append(max(0, round(cumulative - previous)))
        previous = cumulative
    if not buckets or not math.isinf(buckets[-1][0]):
        counts.append(max(0, round(count - previous)))  # the +Inf bucket is always last
    return round(count), total, counts, bounds


class _Encoder:
    """Prometheus families → ``Metric`` messages (the protobuf classes loaded once)."""

    def __init__(self, constant_labels: Mapping[str, str]) -> None:
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.metrics.v1 import metrics_pb2

        self.common = common_pb2
        self.metrics = metrics_pb2
        # service/environment are the resource's service.name/deployment.environment
        self.skip = {k: v for k, v in constant_labels.items() if k in ("service", "environment")}
        self.starts = _StartTimes()

    def metrics_of(self, family: Any, now_ns: int) -> list[Any]:
        """The ``Metric`` messages of one family (none for a family without samples)."""
        m = self.metrics
        kind = family.type
        created = _created(family)
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        if not samples:
            return []
        if kind not in ("histogram", "summary", "counter"):
            # gauge, info, stateset, unknown, gaugehistogram: a Gauge per sample name
            names: dict[str, Any] = {}
            for sample in samples:
                if sample.name not in names:
                    names[sample.name] = self._metric(family, sample.name)
                names[sample.name].gauge.data_points.append(self._number(sample, now_ns, 0))
            return list(names.values())
        metric = self._metric(family, family.name)
        if kind == "counter":
            metric.name = samples[0].name  # `http_requests_total`, as /metrics shows it
            metric.sum.aggregation_temporality = _CUMULATIVE
            metric.sum.is_monotonic = True
            for sample in samples:
                key = tuple(sorted(sample.labels.items()))
                value = float(sample.value)
                start = self.starts.start((sample.name, key), value, now_ns, created.get(key))
                metric.sum.data_points.append(self._number(sample, now_ns, start))
        elif kind == "histogram":
            metric.histogram.aggregation_temporality = _CUMULATIVE
            for key, group in _by_labels(samples, drop="le").items():
                count, total, counts, bounds = _histogram_point(group, family.name)
                start = self.starts.start((family.name, key), count, now_ns, created.get(key))
                metric.histogram.data_points.append(m.HistogramDataPoint(
                    attributes=_attributes(_point_labels(dict(key), self.skip), self.common),
                    start_time_unix_nano=start, time_unix_nano=_time_ns(group[0], now_ns),
                    count=count, sum=total, bucket_counts=counts, explicit_bounds=bounds,
                ))  # fmt: skip
        else:
            for key, group in _by_labels(samples).items():
                values = {s.name[len(family.name) :]: float(s.value) for s in group}
                count = round(values.get("_count", 0.0))
                start = self.starts.start((family.name, key), count, now_ns, created.get(key))
                metric.summary.data_points.append(m.SummaryDataPoint(
                    attributes=_attributes(_point_labels(dict(key), self.skip), self.common),
                    start_time_unix_nano=start, time_unix_nano=_time_ns(group[0], now_ns),
                    count=count, sum=values.get("_sum", 0.0),
                ))  # fmt: skip
        return [metric]

    def _metric(self, family: Any, name: str) -> Any:
        return self.metrics.Metric(name=name, description=family.documentation or "",
                                   unit=getattr(family, "unit", "") or "")  # fmt: skip

    def _number(self, sample: Any, now_ns: int, start: int) -> Any:
        return self.metrics.NumberDataPoint(
            attributes=_attributes(_point_labels(sample.labels, self.skip), self.common),
            start_time_unix_nano=start, time_unix_nano=_time_ns(sample, now_ns),
            as_double=float(sample.value),
        )  # fmt: skip

    def request(self, snapshot: Snapshot, resource: Mapping[str, Any]) -> Any:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource

        now_ns = snapshot.timestamp_ms * 1_000_000
        metrics = []
        for family in snapshot.families:
            metrics.extend(self.metrics_of(family, now_ns))
        m = self.metrics
        scope = self.common.InstrumentationScope(name=SCOPE, version=__version__)
        return ExportMetricsServiceRequest(resource_metrics=[m.ResourceMetrics(
            resource=Resource(attributes=_attributes(resource, self.common)),
            scope_metrics=[m.ScopeMetrics(scope=scope, metrics=metrics)],
        )])  # fmt: skip


def encode_request(
    snapshot: Snapshot, resource: Mapping[str, Any], constant_labels: Mapping[str, str] = {}
) -> Any:
    """One ``ExportMetricsServiceRequest`` for ``snapshot`` (start times as a fresh process
    would give them)."""
    return _Encoder(constant_labels).request(snapshot, resource)


# --- the output ------------------------------------------------------------------------------


class OtlpMetricsOutput(PushOutput):
    """Pushes the merged registry to an OTLP receiver (an OpenTelemetry Collector).

    Args:
        endpoint: the URL (HTTP: ``…/v1/metrics`` added to a bare collector address; gRPC:
            ``http://host:4317``, or ``https://`` for TLS); ``None`` for the default.
        protocol: ``http/protobuf`` or ``grpc``.
        resource: the resource attributes, read at every push (``ProcessResource`` gives the
            pushing process's pid and instance id).
        constant_labels: the service's constant labels (``service``/``environment`` are not
            repeated on points).
        headers: sent with every request (gRPC: as metadata, names lower-cased).
    """

    kind = "otlp"
    merged = True

    def __init__(
        self,
        endpoint: str | None,
        *,
        protocol: str = "http/protobuf",
        resource: Any,
        constant_labels: Mapping[str, str] = {},
        headers: Mapping[str, str] = {},
        **push: Any,
    ) -> None:
        require_proto(protocol)
        url = resolve_endpoint(endpoint, protocol)
        super().__init__(where=where(url), **push)
        self._url = url  # may carry credentials: messages show `where`
        self._protocol = protocol
        self._resource = resource
        self._encoder = _Encoder(constant_labels)
        agent = f"telemetry-web/{__version__}"
        self._headers = {"User-Agent": agent, **headers,
                         "Content-Type": "application/x-protobuf"}  # fmt: skip
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._channel: tuple[int, Any, Any] | None = None  # (pid, channel, stub)

    def export(self, snapshot: Snapshot, timeout: float) -> None:
        attributes = dict(getattr(self._resource, "attributes", self._resource))
        request = self._encoder.request(snapshot, attributes)
        if self._protocol == "grpc":
            self._export_grpc(request, timeout)
        else:
            post(self._url, request.SerializeToString(), self._headers, timeout)

    def _stub(self) -> Any:
        channel = self._channel
        if channel is not None and channel[0] == os.getpid():
            return channel[2]
        import grpc
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
            MetricsServiceStub,
        )

        parts = urlsplit(self._url if "://" in self._url else f"http://{self._url}")
        host = parts.hostname or "localhost"
        target = f"[{host}]:{parts.port or 4317}" if ":" in host else f"{host}:{parts.port or 4317}"
        if parts.scheme == "https":
            made = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            made = grpc.insecure_channel(target)
        stub = MetricsServiceStub(made)  # type: ignore[no-untyped-call]
        self._channel = (os.getpid(), made, stub)  # a forked child's own
        return self._channel[2]

    def _export_grpc(self, request: Any, timeout: float) -> None:
        import grpc

        try:
            self._stub().Export(request, timeout=timeout, metadata=self._metadata or None)
        except grpc.RpcError as error:
            raise _grpc_error(error) from None

    def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and channel[0] == os.getpid():
            channel[1].close()


def _grpc_error(error: Any) -> ExportError:
    code = error.code() if callable(getattr(error, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    details = (error.details() if callable(getattr(error, "details", None)) else "") or ""
    if name == "UNAVAILABLE" and "refused" in details.lower():
        cause = "connection refused (gRPC UNAVAILABLE)"
    elif name == "DEADLINE_EXCEEDED":
        cause = "timed out (gRPC DEADLINE_EXCEEDED)"
    else:
        first = details.strip().splitlines()[0][:200] if details.strip() else ""
        cause = f"gRPC {name}" + (f" ({scrub_text(first)})" if first else "")
    return ExportError(cause, retry=name in _RETRYABLE_CODES, retry_after=_retry_info(error))


def _retry_info(error: Any) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in the trailing metadata, as the OTLP exporters
    read it."""
    try:
        trailing = error.trailing_metadata() or ()
        for key, value in trailing:
            if key == "google.rpc.retryinfo-bin":
                from google.rpc.error_details_pb2 import (  # type: ignore[import-untyped]
                    RetryInfo,
                )

                delay = RetryInfo.FromString(value).retry_delay
                return min(300.0, float(delay.seconds) + float(delay.nanos) / 1e9)
    except Exception:  # a malformed detail is no reason to fail the report
        return None
    return None
