"""The ``logging:`` section: levels, sinks and processors."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ._fields import POSITIVE, POSITIVE_SIZE, PUSH_DURATION, LogLevel, _http_url, _meta

# --- logging ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConsoleSinkSettings:
    enabled: bool = True
    # True: coloured key-value lines; False: `logging.format` without colours; None: coloured
    # key-value lines when the stream is a terminal, `logging.format` otherwise.
    pretty: bool | None = None
    stream: Literal["stdout", "stderr"] = "stdout"


@dataclass(frozen=True, kw_only=True)
class FileRotationSettings:
    """Rotate past ``max_size`` bytes, keep ``max_files`` rotated files, gzip them if asked."""

    max_size: int = field(default=100 * 10**6, metadata=_meta(unit="size"))
    max_files: int = field(default=5, metadata=POSITIVE)
    compress: bool = False


@dataclass(frozen=True, kw_only=True)
class FileSinkSettings:
    path: str
    rotation: FileRotationSettings = field(default_factory=FileRotationSettings)


def _strftime_pattern(value: str) -> bool:
    import time

    try:
        return bool(time.strftime(value, time.gmtime(0)))
    except ValueError:
        return False


def _regexes(value: tuple[str, ...]) -> bool:
    try:
        for pattern in value:
            re.compile(pattern)
    except re.error:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class ElasticsearchSinkSettings:
    """The ``_bulk`` API: a request per ``buffer_size`` events or per ``flush_interval``."""

    url: str = field(metadata=_meta(check=_http_url, expect="an http:// or https:// URL"))
    # The index of each event, from its timestamp (strftime, UTC).
    index_pattern: str = field(
        default="logs-%Y.%m.%d",
        metadata=_meta(check=_strftime_pattern, expect="an index name with strftime codes"),
    )
    buffer_size: int = field(default=1000, metadata=POSITIVE)
    flush_interval: float = field(default=5.0, metadata=_meta(unit="duration"))
    # Events held while Elasticsearch is slow or away; past this new ones are dropped.
    max_buffer: int = field(default=10000, metadata=POSITIVE)
    # The same buffer by its rendered bytes (events being sent included).
    max_buffer_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)
    timeout: float = field(default=10.0, metadata=_meta(unit="duration"))
    # First wait after a failed request, doubled per failure up to max_backoff.
    backoff: float = field(default=1.0, metadata=_meta(unit="duration"))
    max_backoff: float = field(default=30.0, metadata=_meta(unit="duration"))
    # Sent as `Authorization: ApiKey <api_key>`; user:password in the URL is Basic auth.
    api_key: str | None = field(default=None, metadata=_meta(secret=True))


@dataclass(frozen=True, kw_only=True)
class OtlpLogSinkSettings:
    """OTLP logs to an OpenTelemetry Collector: a request per ``batch_size`` records or per
    ``flush_interval``; ``endpoint`` defaults to ``http://localhost:4318`` (``/v1/logs`` is
    added) or, for ``grpc``, ``http://localhost:4317``."""

    endpoint: str | None = field(
        default=None, metadata=_meta(check=_http_url, expect="an http:// or https:// URL")
    )
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict, repr=False, metadata=_meta(secret=True))
    timeout: float = field(default=10.0, metadata=PUSH_DURATION)
    batch_size: int = field(default=512, metadata=POSITIVE)
    flush_interval: float = field(default=1.0, metadata=PUSH_DURATION)
    # Records held while the Collector is slow or away (and their encoded bytes, the batch
    # being sent included); past either, new ones are dropped.
    max_buffer: int = field(default=10000, metadata=POSITIVE)
    max_buffer_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)
    # First wait after a failed export, doubled per failure up to max_backoff.
    backoff: float = field(default=1.0, metadata=_meta(unit="duration"))
    max_backoff: float = field(default=30.0, metadata=_meta(unit="duration"))


@dataclass(frozen=True, kw_only=True)
class LoggingSinksSettings:
    console: ConsoleSinkSettings | None = field(default_factory=ConsoleSinkSettings)
    file: FileSinkSettings | None = None
    elasticsearch: ElasticsearchSinkSettings | None = None
    otlp: OtlpLogSinkSettings | None = None


@dataclass(frozen=True, kw_only=True)
class LogProcessorSettings:
    """``add_fields {fields}``, ``filter {field, exclude}``, ``sample {every, events}`` or
    ``redact {keys, patterns}``, applied in the configured order (``redact`` runs last when it
    is not listed: it is always on)."""

    type: Literal["add_fields", "filter", "sample", "redact"]
    fields: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata=_meta(kinds=("add_fields",))
    )
    # The name `field` is the configuration key; below it, dataclasses.field is spelled out.
    field: str | None = dataclasses.field(default=None, metadata=_meta(kinds=("filter",)))
    exclude: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("filter",)))
    # sample: keep 1 in `every` events per event name (those matching `events`, or all);
    # warnings and errors are always kept.
    every: int | None = dataclasses.field(default=None, metadata={**POSITIVE, "kinds": ("sample",)})
    events: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("sample",)))
    # redact: key names or globs redacted on top of the built-in ones, and regular
    # expressions whose matches in string values are redacted.
    keys: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("redact",)))
    patterns: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=_meta(kinds=("redact",), check=_regexes, expect="regular expressions"),
    )


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    level: LogLevel = "info"
    format: Literal["json", "console"] = "json"
    # Per logger name, e.g. {"sqlalchemy.engine": "warning"}.
    levels: dict[str, LogLevel] = field(default_factory=dict)
    sinks: LoggingSinksSettings = field(default_factory=LoggingSinksSettings)
    processors: tuple[LogProcessorSettings, ...] = ()
    request_log: bool = True
    # The server's own access line under the launcher (uvicorn, gunicorn, hypercorn,
    # werkzeug): "drop" it, or "json" (one line through the pipeline, query secrets redacted);
    # "auto" drops it while request_log covers the request. (Not "off": YAML reads that as
    # false.)
    server_access_log: Literal["auto", "drop", "json"] = "auto"
    # Events waiting for the writer thread; past this they are dropped and counted.
    queue_size: int = field(default=10000, metadata=POSITIVE)
    # The same queue by the events' estimated size (from their fields); past this, dropped.
    queue_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)
