"""Metric outputs: the registry pushed to a backend every ``interval`` (``metrics.exporters``).

Each output is a :class:`PushOutput` (``_push.py``: thread, fork safety, one pusher among
workers, backoff, drops, reports, final flush); ``_build.py`` makes them from the
configuration. To add one: subclass ``PushOutput``, set ``kind`` (its ``type``) and ``merged``,
implement ``export(snapshot, timeout)`` (raising :class:`ExportError`), and add a case to
``_build.py``. StatsD (``metrics.collectors.statsd``) is built apart: every worker sends.
"""

from __future__ import annotations

from ._datadog import DatadogOutput
from ._otlp import OtlpMetricsOutput
from ._push import ExportError, PushOutput, Snapshot
from ._remote_write import RemoteWriteOutput
from ._statsd import StatsdOutput

__all__ = [
    "DatadogOutput",
    "ExportError",
    "OtlpMetricsOutput",
    "PushOutput",
    "RemoteWriteOutput",
    "Snapshot",
    "StatsdOutput",
]
