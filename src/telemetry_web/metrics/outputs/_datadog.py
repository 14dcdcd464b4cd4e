"""Datadog metrics API v2 (``metrics.exporters: - type: datadog``, ``api_key``, ``site``).

Every ``interval`` the whole registry (in multiprocess mode the merged values of every worker,
pushed by one process) is POSTed as gzip-compressed JSON to ``https://api.<site>/api/v2/series``
(or to ``endpoint``, for a proxy or a test receiver), the key in the ``DD-API-KEY`` header:

- **Names and tags**: a series is named after its Prometheus sample (``http_requests_total``,
  ``http_request_duration_seconds_count``; characters Datadog does not accept become ``_``); its
  labels and the service's constant labels (``service``, ``environment``, ``labels``) are
  ``key:value`` tags; the host is a ``host`` resource.
- **Counters are ``count`` points holding the increase since the last push** (type 1, with
  ``interval``), as Datadog sums counts over time. Histograms are counts too:
  ``<name>_count``, ``<name>_sum`` and, per bucket, ``<name>_bucket`` tagged
  ``upper_bound:<le>`` (cumulative, as Prometheus's ``le`` buckets; ``upper_bound`` is the tag
  Datadog's own OpenMetrics check uses), so rates and bucket-based percentiles can be computed
  in Datadog; no quantiles are computed here. Summaries send ``_count``/``_sum`` as counts and
  their quantiles as gauges; gauges, info and state sets are ``gauge`` points (type 3).
  Non-finite values (JSON has no NaN) are left out.
- **Exact counts**: the last value sent is kept per series and updated per accepted request,
  so a retry (a 5xx, or a later snapshot replacing one that failed) sends every increase once,
  and a counter that went down (a restart) counts from zero. Under several workers the pusher
  persists that state next to its push lock (``.telemetry-web-push-<name>.state.json`` in the
  multiprocess directory, replaced atomically after each push); a worker taking over (the
  pusher exited or was killed) starts from it, so nothing is counted twice and nothing sent
  is lost. Without a state file the baseline is zero: the service's counters started there.
- **Batches**: series are split so that one request stays under Datadog's documented limits,
  500 KB compressed (512,000 bytes) and 5 MB uncompressed (5,242,880 bytes).
- **Errors**: 429 and 5xx are retried with backoff; a 403 is the key being refused, reported
  as one line naming ``api_key`` and ``site``, and not retried. The key never appears in a log
  line, an error or a repr.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ... import __version__
from ...config._model import DATADOG_SITES
from ._http import post, where
from ._push import ExportError, PushOutput, Snapshot

__all__ = ["DATADOG_SITES", "DatadogOutput", "series_url"]

COUNT, GAUGE = 1, 3  # MetricIntakeType: 0 unspecified, 1 count, 2 rate, 3 gauge

_NAME = re.compile(r"[^A-Za-z0-9_.]")
_COUNTED = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum")}  # fmt: skip

Key = tuple[str, tuple[str, ...]]  # metric name, tags


def series_url(site: str) -> str:
    """The v2 series endpoint of a Datadog site (``datadoghq.eu`` → ``https://api.datadoghq.eu``)."""
    return f"https://api.{site}/api/v2/series"


class _Entry:
    """One series of a request: its JSON, and for a count the value it brings the state to."""

    __slots__ = ("body", "key", "value")

    def __init__(self, body: bytes, key: Key | None, value: float) -> None:
        self.body = body
        self.key = key
        self.value = value


class DatadogOutput(PushOutput):
    """Pushes the merged registry to the Datadog metrics API v2 (``/api/v2/series``)."""

    kind = "datadog"
    merged = True
    MAX_COMPRESSED = 512_000  # bytes per request, as sent
    MAX_UNCOMPRESSED = 5_242_880  # bytes per request, once gunzipped

    def __init__(
        self,
        api_key: str,
        *,
        site: str = "datadoghq.com",
        endpoint: str | None = None,
        constant_labels: Mapping[str, str] = {},
        hostname: str | None = None,
        **push: Any,
    ) -> None:
        url = endpoint or series_url(site)
        super().__init__(where=where(url), **push)
        self._url = url
        self._key = api_key
        self._headers = {"DD-API-KEY": api_key, "Content-Type": "application/json",
                         "Content-Encoding": "gzip",
                         "User-Agent": f"telemetry-web/{__version__}"}  # fmt: skip
        self._constant = dict(constant_labels)
        self._resources = [{"type": "host", "name": hostname or socket.gethostname()}]
        self._last: dict[Key, float] = {}  # the value last accepted, per counted series
        shared_dir = push.get("shared_dir")
        self._state_path: str | None = None
        if shared_dir:
            self._state_path = os.path.join(
                shared_dir, f".telemetry-web-push-{self.name}.state.json"
            )
        self._state_stamp: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"<DatadogOutput {self.name} to {self.where}>"

    # --- one push -------------------------------------------------------------------------

    def export(self, snapshot: Snapshot, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._load_state()
        entries = self._entries(snapshot)
        sent = False
        try:
            for batch, body in self._batches(entries):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                self._post(body, remaining)
                sent = True
                for entry in batch:
                    if entry.key is not None:
                        self._last[entry.key] = entry.value
        finally:
            if sent:
                self._save_state()

    def _post(self, body: bytes, timeout: float) -> None:
        try:
            post(self._url, body, self._headers, timeout)
        except ExportError as exc:
            if exc.cause.startswith("HTTP 403"):
                raise ExportError(
                    "HTTP 403: the API key was refused (check the exporter's api_key and site)",
                    retry=False,
                ) from None
            raise ExportError(
                self._hide(exc.cause), retry=exc.retry, retry_after=exc.retry_after
            ) from None
        except Exception as exc:
            if self._key and self._key in str(exc):
                raise ExportError(self._hide(f"{type(exc).__name__}: {exc}")) from None
            raise

    def _hide(self, text: str) -> str:
        return text.replace(self._key, "<api_key>") if self._key else text

    # --- the request bodies -----------------------------------------------------------------

    def _entries(self, snapshot: Snapshot) -> list[_Entry]:
        timestamp = snapshot.timestamp_ms // 1000
        interval = max(1, round(self.interval))
        entries: list[_Entry] = []
        seen: set[Key] = set()
        for family, sample in snapshot.series():
            value = float(sample.value)
            if not math.isfinite(value):
                continue
            name = _NAME.sub("_", sample.name)
            labels = {**self._constant, **sample.labels}
            counted = sample.name.endswith(_COUNTED.get(family.type, ()))
            if counted and "le" in labels:
                labels["upper_bound"] = labels.pop("le")
            tags = tuple(sorted(f"{k}:{v}" for k, v in labels.items()))
            key = (name, tags)
            if key in seen:
                continue
            seen.add(key)
            series: dict[str, Any] = {"metric": name}
            if counted:
                last = self._last.get(key, 0.0)
                delta = value - last if value >= last else value  # went down: a restart
                series.update(type=COUNT, interval=interval)
                point = {"timestamp": timestamp, "value": delta}
            else:
                series["type"] = GAUGE
                point = {"timestamp": timestamp, "value": value}
            series.update(points=[point], tags=list(tags), resources=self._resources)
            body = json.dumps(series, separators=(",", ":")).encode()
            entries.append(_Entry(body, key if counted else None, value))
        return entries

    def _batches(self, entries: Sequence[_Entry]) -> Iterator[tuple[Sequence[_Entry], bytes]]:
        """Consecutive runs of ``entries`` whose request bodies stay under both limits."""
        overhead = len(b'{"series":[]}')
        start, size = 0, overhead
        for index, entry in enumerate(entries):
            grown = size + len(entry.body) + (1 if index > start else 0)
            if index > start and grown > self.MAX_UNCOMPRESSED:
                yield from self._compressed(entries[start:index])
                start, grown = index, overhead + len(entry.body)
            size = grown
        if start < len(entries):
            yield from self._compressed(entries[start:])

    def _compressed(self, batch: Sequence[_Entry]) -> Iterator[tuple[Sequence[_Entry], bytes]]:
        raw = b'{"series":[' + b",".join(e.body for e in batch) + b"]}"
        body = gzip.compress(raw, compresslevel=6)
        if len(body) <= self.MAX_COMPRESSED or len(batch) == 1:
            yield batch, body
            return
        half = len(batch) // 2
        yield from self._compressed(batch[:half])
        yield from self._compressed(batch[half:])

    # --- the last values sent, shared by the workers that push in turn ----------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        if self._state_path is None:
            return None
        try:
            status = os.stat(self._state_path)
        except OSError:
            return None
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _load_state(self) -> None:
        """Read the state another pusher left, unless the file is the one we last saw."""
        stamp = self._stamp()
        if stamp is None or stamp == self._state_stamp:
            return
        assert self._state_path is not None
        try:
            with open(self._state_path, encoding="utf-8") as handle:
                data = json.load(handle)
            self._last = {(str(n), tuple(str(t) for t in tags)): float(v)
                          for n, tags, v in data["series"]}  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: keep what this process knows
        self._state_stamp = stamp

    def _save_state(self) -> None:
        if self._state_path is None:
            return
        directory = os.path.dirname(self._state_path)
        data = {"series": [[n, list(tags), v] for (n, tags), v in self._last.items()]}
        temporary: str | None = None
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".telemetry-web-push-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(temporary, self._state_path)
        except OSError:  # a full disk: a pusher taking over starts from the older state
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        # What is on disk now (ours, or an older file we must not read back over our values).
        self._state_stamp = self._stamp()
