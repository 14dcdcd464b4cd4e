"""The Elasticsearch sink: events shipped with the ``_bulk`` API from a background thread.

The log writer thread only renders and appends to a bounded buffer; a sender thread of its own
posts NDJSON bulk bodies (``{"index": {"_index": ...}}`` then the document, per event) when
``buffer_size`` events are waiting or every ``flush_interval``, with the standard library's
``http.client`` over one kept-alive connection.

Failures, and what becomes of the events:

- Connection errors, timeouts, HTTP 408/429/5xx, and items answered 429/5xx are retried: the
  events go back to the front of the buffer and the next attempt waits a backoff period that
  doubles from ``backoff`` up to ``max_backoff`` (or longer, when a 429/503 says
  ``Retry-After``). A failure prints one line on stderr, ``telemetry-web: Log shipping failed:
  ...``, then at most one every 30 s (with the number of failed attempts since the last line),
  and one line when shipping recovers.
- Other 4xx answers and items (a mapping conflict, a bad index name) will not get better:
  those events are dropped, counted with reason ``rejected``.
- While Elasticsearch is away the buffer fills up to ``max_buffer`` events or
  ``max_buffer_bytes`` bytes (the rendered bulk items; the batch being sent, which is also the
  retry buffer, counts in both); past that, new events are dropped, counted with reason
  ``buffer_full``. What is buffered is shipped when it comes back. Events still buffered, or
  still being sent, when the sink is closed are counted as ``shutdown`` (an answer arriving
  later for a batch so counted is ignored).

Index names come from ``index_pattern`` (``logs-%Y.%m.%d``) and each event's own timestamp. Each
document also carries ``@timestamp`` (the same value), the field Kibana and ECS expect.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from ._shipping import Item, KeptAliveConnection, Retry, ShippingSink, retry_after
from ._sinks import json_lines

__all__ = ["ElasticsearchSink"]

_quote: Callable[[str], str] = json.encoder.encode_basestring

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ElasticsearchSink(ShippingSink):
    """Ships events to Elasticsearch's ``_bulk`` API; see the module docstring.

    Args:
        url: ``http[s]://[user:password@]host:port[/prefix]``.
        dropped: ``telemetry_log_events_dropped_total`` (``labels(sink, reason).inc(n)``).
        report: where the ``Log shipping failed`` lines go (stderr by default).
    """

    name = "elasticsearch"
    thread_name = "telemetry-logs-es"
    _sender: KeptAliveConnection

    def __init__(
        self,
        url: str,
        *,
        dropped: Any,
        index_pattern: str = "logs-%Y.%m.%d",
        buffer_size: int = 1000,
        flush_interval: float = 5.0,
        max_buffer: int = 10_000,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        timeout: float = 10.0,
        api_key: str | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self._path = (
            parts.path.rstrip("/") + "/_bulk?filter_path=errors,items.*.status,items.*.error"
        )
        self.url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        )
        self._headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"ApiKey {api_key}"
        elif parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self.index_pattern = index_pattern
        self.buffer_size = buffer_size
        self.timeout = timeout
        self._index_key: str | None = None
        self._action = b""
        super().__init__(
            self.url, dropped=dropped, batch_size=buffer_size, flush_interval=flush_interval,
            max_buffer=max_buffer, max_buffer_bytes=max_buffer_bytes, backoff=backoff,
            max_backoff=max_backoff, report=report,
        )  # fmt: skip

    def _connect(self) -> KeptAliveConnection:
        return KeptAliveConnection(self.url, timeout=self.timeout)

    # --- the log writer thread ----------------------------------------------------------------

    def _encode(self, events: Sequence[dict[str, Any]]) -> list[Item]:
        items = []
        for event, line in zip(events, json_lines(events), strict=True):
            item = self._item(event, line)
            items.append((item, len(item)))
        return items

    def _item(self, event: dict[str, Any], line: str) -> bytes:
        timestamp = event.get("timestamp")
        key = timestamp[:19] if isinstance(timestamp, str) else None
        if key is None or key != self._index_key:
            self._action = self._action_for(key)
            self._index_key = key
        document = line.encode("utf-8", "backslashreplace")
        if isinstance(timestamp, str) and document.startswith(b"{"):
            stamp = _quote(timestamp).encode("utf-8", "backslashreplace")
            document = b'{"@timestamp": ' + stamp + b", " + document[1:]
        return self._action + document + b"\n"

    def _action_for(self, second: str | None) -> bytes:
        try:
            when = datetime.strptime(second or "", "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            when = datetime.now(timezone.utc)
        index = when.strftime(self.index_pattern)
        return json.dumps({"index": {"_index": index}}).encode() + b"\n"

    # --- the sender thread --------------------------------------------------------------------

    def _send(self, batch: list[Item]) -> tuple[list[Item], int, str]:
        """POST one bulk body; the items to retry, the rejected ones. Raises Retry for the
        whole batch."""
        body = b"".join(item for item, _size in batch)
        try:
            status, response, payload = self._sender.post(self._path, body, self._headers)
        except (OSError, http.client.HTTPException) as exc:
            raise Retry(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if status in _RETRY_STATUSES:
            raise Retry(
                f"{self.url}: HTTP {status} {_snippet(payload)}",
                retry_after(response.getheader("Retry-After")),
            )
        if not 200 <= status < 300:
            return [], len(batch), f"{self.url}: HTTP {status} {_snippet(payload)}"
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            raise Retry(f"{self.url}: unreadable bulk response {_snippet(payload)}") from None
        if not answer.get("errors"):
            return [], 0, ""
        return self._item_failures(batch, answer.get("items") or [])

    def _item_failures(self, batch: list[Item], items: list[Any]) -> tuple[list[Item], int, str]:
        retry: list[Item] = []
        rejected, reason = 0, ""
        for event, item in zip(batch, items, strict=False):
            result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
            status = result.get("status", 0) if isinstance(result, dict) else 0
            if 200 <= status < 300:
                continue
            if status in _RETRY_STATUSES:
                retry.append(event)
            else:
                rejected += 1
                error = result.get("error") if isinstance(result, dict) else None
                reason = reason or _error_text(error, status)
        if len(items) < len(batch):  # items missing from the answer: not known to be stored
            retry.extend(batch[len(items) :])
        return retry, rejected, f"{self.url}: events rejected: {reason}"


def _snippet(payload: bytes) -> str:
    text = payload[:200].decode("utf-8", "replace").strip()
    return text + ("..." if len(payload) > 200 else "")


def _error_text(error: Any, status: int) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')} (HTTP {status})"
    return f"{error or 'error'} (HTTP {status})"
