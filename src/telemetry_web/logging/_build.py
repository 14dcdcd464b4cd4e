"""The configured sinks, built from ``logging.sinks``; a path or URL that cannot work is a
configuration error naming its key."""

from __future__ import annotations

from typing import Any

from ..config._model import LoggingSettings
from ..errors import ConfigError
from ._elasticsearch import ElasticsearchSink
from ._file import FileSink
from ._sinks import ConsoleSink, LogSink

__all__ = ["build_sinks"]


def build_sinks(settings: LoggingSettings, *, dropped: Any) -> list[LogSink]:
    """Console, file and Elasticsearch sinks as configured, in that order.

    Raises:
        ConfigError: the file cannot be opened, or the Elasticsearch URL is not one.
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
            for sink in sinks:  # the file sink opened above
                close = getattr(sink, "close", None)
                if close is not None:
                    close()
            raise ConfigError([f"logging.sinks.elasticsearch.url: {exc}"]) from None
    return sinks
