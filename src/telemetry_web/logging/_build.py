"""The configured sinks, built from ``logging.sinks``; a path or URL that cannot work is a
configuration error naming its key."""

from __future__ import annotations

from typing import Any

from ..config._model import LoggingSettings
from ..errors import ConfigError
from ._elasticsearch import ElasticsearchSink
from ._file import FileSink
from ._otlp import OtlpLogSink
from ._sinks import ConsoleSink, LogSink

__all__ = ["build_sinks"]


def build_sinks(settings: LoggingSettings, *, dropped: Any, resource: Any = None) -> list[LogSink]:
    """Console, file, Elasticsearch and OTLP sinks as configured, in that order (``resource``:
    the spans' OpenTelemetry resource, for the OTLP records).

    Raises:
        ConfigError: the file cannot be opened, or the Elasticsearch URL is not one.
        MissingExtraError: OTLP is configured without the ``otlp`` extra.
    """
    sinks: list[LogSink] = []
    configured = settings.sinks
    console = configured.console
    if console is not None and console.enabled:
        sinks.append(
            ConsoleSink(format=settings.format, pretty=console.pretty, stream=console.stream)
        )
    file = configured.file
    if file is not None:
        try:
            sinks.append(
                FileSink(
                    file.path,
                    max_size=file.rotation.max_size,
                    max_files=file.rotation.max_files,
                    compress=file.rotation.compress,
                )
            )
        except OSError as exc:
            raise ConfigError(
                [f"logging.sinks.file.path: cannot write to {file.path!r}: {exc.strerror or exc}"]
            ) from None
    es = configured.elasticsearch
    if es is not None:
        try:
            sinks.append(
                ElasticsearchSink(
                    es.url,
                    dropped=dropped,
                    index_pattern=es.index_pattern,
                    buffer_size=es.buffer_size,
                    flush_interval=es.flush_interval,
                    max_buffer=es.max_buffer,
                    max_buffer_bytes=es.max_buffer_bytes,
                    timeout=es.timeout,
                    api_key=es.api_key,
                    backoff=es.backoff,
                    max_backoff=es.max_backoff,
                )
            )
        except ValueError as exc:
            _close(sinks)  # the file sink opened above
            raise ConfigError([f"logging.sinks.elasticsearch.url: {exc}"]) from None
    otlp = configured.otlp
    if otlp is not None:
        if resource is None:
            from opentelemetry.sdk.resources import Resource

            resource = Resource.get_empty()
        try:
            sinks.append(
                OtlpLogSink(
                    otlp.endpoint,
                    dropped=dropped,
                    resource=resource,
                    protocol=otlp.protocol,
                    headers=otlp.headers,
                    timeout=otlp.timeout,
                    batch_size=otlp.batch_size,
                    flush_interval=otlp.flush_interval,
                    max_buffer=otlp.max_buffer,
                    max_buffer_bytes=otlp.max_buffer_bytes,
                    backoff=otlp.backoff,
                    max_backoff=otlp.max_backoff,
                )
            )
        except BaseException:
            _close(sinks)  # the file and Elasticsearch sinks built above
            raise
    return sinks


def _close(sinks: list[LogSink]) -> None:
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
