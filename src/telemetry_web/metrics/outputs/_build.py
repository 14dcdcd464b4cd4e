"""The outputs of the configuration: :func:`build_outputs` (``metrics.exporters``, one output
per entry), :func:`build_statsd` (``metrics.collectors.statsd``: every worker sends) and
:func:`metrics_source`, what the merged outputs read."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY
from prometheus_client.registry import Collector, CollectorRegistry

from .._exposition import _Combined
from .._multiprocess import MultiprocessCollector
from ._datadog import DatadogOutput
from ._otlp import OtlpMetricsOutput
from ._push import PushOutput
from ._remote_write import RemoteWriteOutput
from ._statsd import StatsdOutput, WorkerView, sent_for

if TYPE_CHECKING:
    from ...config._model import MetricsExporterSettings, StatsdCollectorSettings

__all__ = ["build_outputs", "build_statsd", "metrics_source"]


def metrics_source(
    registry: CollectorRegistry,
    shared_dir: str | None,
    before_collect: Callable[[], object] | None = None,
) -> Collector:
    """What ``/metrics`` shows: the Telemetry's registry and prometheus-client's default one,
    or, in multiprocess mode, every worker's files merged (dead workers retired first)."""
    if shared_dir is not None:
        return MultiprocessCollector(shared_dir, before_collect=before_collect)
    return _Combined([registry, REGISTRY] if registry is not REGISTRY else [registry])


def build_outputs(
    exporters: Sequence[MetricsExporterSettings],
    *,
    source: Collector,
    dropped: Any,
    constant_labels: Mapping[str, str],
    shared_dir: str | None,
    resource: Any = None,
) -> list[PushOutput]:
    """One started output per ``metrics.exporters`` entry, named by its type (``prometheus``;
    a second entry of the same type is ``prometheus-2``). ``resource``: the spans' resource,
    which OTLP sends with the metrics."""
    outputs: list[PushOutput] = []
    seen: dict[str, int] = {}
    for entry in exporters:
        seen[entry.type] = seen.get(entry.type, 0) + 1
        name = entry.type if seen[entry.type] == 1 else f"{entry.type}-{seen[entry.type]}"
        push = {"name": name, "interval": entry.interval, "timeout": entry.timeout,
                "source": source, "dropped": dropped, "shared_dir": shared_dir}  # fmt: skip
        output = _build(entry, push, constant_labels, resource=resource)
        output.start()
        outputs.append(output)
    return outputs


def _build(
    entry: MetricsExporterSettings,
    push: dict[str, Any],
    constant_labels: Mapping[str, str],
    *,
    resource: Any = None,
) -> PushOutput:
    if entry.type == "prometheus" and entry.endpoint is not None:
        auth = entry.basic_auth
        return RemoteWriteOutput(
            entry.endpoint, constant_labels=constant_labels, headers=entry.headers,
            basic_auth=(auth.username, auth.password) if auth is not None else None,
            bearer_token=entry.bearer_token, **push,
        )  # fmt: skip
    if entry.type == "datadog" and entry.api_key is not None:
        return DatadogOutput(
            entry.api_key, site=entry.site, endpoint=entry.endpoint,
            constant_labels=constant_labels, **push,
        )  # fmt: skip
    if entry.type == "otlp":
        return OtlpMetricsOutput(
            entry.endpoint, protocol=entry.protocol, headers=entry.headers,
            resource=resource if resource is not None else {},
            constant_labels=constant_labels, **push,
        )  # fmt: skip
    # config/_availability.py rejects the types not built yet before we get here
    raise ValueError(f"no metric output for type {entry.type!r}")


def build_statsd(
    settings: StatsdCollectorSettings,
    *,
    registry: CollectorRegistry,
    dropped: Any,
    constant_labels: Mapping[str, str],
    shared_dir: str | None,
    before_collect: Callable[[], object] | None = None,
) -> StatsdOutput:
    """The started StatsD output of ``metrics.collectors.statsd``: every process sends its own
    counters and histograms (deltas), and the gauges of what ``/metrics`` shows."""
    own = _Combined([registry, REGISTRY] if registry is not REGISTRY else [registry])
    gauges = None  # in multiprocess mode: every worker's gauges, merged as /metrics shows them
    if shared_dir is not None:
        gauges = MultiprocessCollector(shared_dir, before_collect=before_collect)
    sent = sent_for(registry)
    sent.source, sent.shared = weakref.ref(own), shared_dir is not None
    output = StatsdOutput(
        settings.host, prefix=settings.prefix, max_packet_size=settings.max_packet_size,
        dogstatsd=settings.dogstatsd, constant_labels=constant_labels, sent=sent, name="statsd",
        interval=settings.flush_interval, timeout=min(2.0, settings.flush_interval),
        source=WorkerView(own, gauges), dropped=dropped, shared_dir=shared_dir,
    )  # fmt: skip
    output.start()
    return output
