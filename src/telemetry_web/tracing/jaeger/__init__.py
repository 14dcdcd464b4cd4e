"""Jaeger's own protocols, for Jaeger deployments older than 1.35 (newer ones accept OTLP).

Configure one of the two::

    tracing:
      exporters:
        jaeger:
          endpoint: "http://jaeger-collector:14268"   # the collector: Thrift binary over HTTP
        # or
        jaeger:
          agent: {host: jaeger-agent, port: 6831, max_packet_size: 65000}   # UDP, compact

- **Collector**: ``POST /api/traces`` (added when the URL has no path) with a Thrift binary
  ``Batch`` as the body, content type ``application/x-thrift``; ``user:password@`` in the URL is
  sent as Basic auth.
- **Agent** (the default, on ``127.0.0.1:6831``, when neither is given): ``Agent.emitBatch``
  oneway messages in the Thrift compact protocol, one per UDP datagram. Batches are split so
  that no datagram exceeds ``max_packet_size``; a span too large for a datagram by itself is
  dropped and counted in ``telemetry_spans_dropped_total{exporter="jaeger",reason="too_large"}``.

Both sit behind the bounded batch processor like every exporter. The structures are written
from jaeger-idl's ``jaeger.thrift`` (:mod:`._thrift`) and encoded with the ``thrift`` library:
``pip install 'telemetry-web[jaeger]'``.
"""

from __future__ import annotations

from collections.abc import Callable

from ...config._model import JaegerAgentSettings, JaegerExporterSettings
from ...errors import ConfigError, MissingExtraError

try:
    import thrift  # type: ignore[import-untyped]  # noqa: F401
except ImportError:
    raise MissingExtraError("tracing.exporters.jaeger", "thrift", "jaeger") from None

from .._batch import ExporterFactory
from ._exporters import (
    COLLECTOR_TIMEOUT,
    MAX_UDP_PAYLOAD,
    JaegerAgentExporter,
    JaegerCollectorExporter,
    collector_url,
)

__all__ = ["JaegerAgentExporter", "JaegerCollectorExporter", "jaeger_exporter_factory"]


def jaeger_exporter_factory(
    settings: JaegerExporterSettings,
    too_large: Callable[[int], None] | None = None,
    export_timeout: float | None = None,
) -> ExporterFactory:
    """A factory of collector exporters when ``endpoint`` is set, of agent exporters otherwise
    (``agent`` or its defaults); ``too_large`` counts spans the agent drops as too large;
    ``export_timeout`` caps the collector's request timeout (10 s).

    Raises:
        ConfigError: the endpoint is not an http(s) URL, or max_packet_size exceeds a UDP
            datagram.
    """
    endpoint = settings.endpoint
    if endpoint is not None:
        try:
            url = collector_url(endpoint)
        except ValueError as exc:
            raise ConfigError([f"tracing.exporters.jaeger.endpoint: {exc}"]) from None
        timeout = min(COLLECTOR_TIMEOUT, export_timeout or COLLECTOR_TIMEOUT)
        return lambda: JaegerCollectorExporter(url, timeout=timeout)
    agent = settings.agent or JaegerAgentSettings()
    if agent.max_packet_size > MAX_UDP_PAYLOAD:
        raise ConfigError(
            [
                "tracing.exporters.jaeger.agent.max_packet_size: expected at most "
                f"{MAX_UDP_PAYLOAD} (the largest UDP payload over IPv4), "
                f"got {agent.max_packet_size}"
            ]
        )
    return lambda: JaegerAgentExporter(
        agent.host, agent.port, agent.max_packet_size, too_large=too_large
    )
