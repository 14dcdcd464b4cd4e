"""The exporter factory of ``tracing.exporters.jaeger``: the collector's or the agent's."""

from __future__ import annotations

from collections.abc import Callable

from ...config._model import JaegerAgentSettings, JaegerExporterSettings
from ...errors import ConfigError
from .._batch import ExporterFactory
from ._exporters import (
    COLLECTOR_TIMEOUT,
    MAX_UDP_PAYLOAD,
    JaegerAgentExporter,
    JaegerCollectorExporter,
    collector_url,
)

__all__ = ["jaeger_exporter_factory"]


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
