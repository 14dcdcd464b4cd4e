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

from ...errors import MissingExtraError

try:
    import thrift  # type: ignore[import-untyped]  # noqa: F401
except ImportError:
    raise MissingExtraError("tracing.exporters.jaeger", "thrift", "jaeger") from None

from ._exporters import JaegerAgentExporter, JaegerCollectorExporter

__all__ = ["JaegerAgentExporter", "JaegerCollectorExporter"]
