"""Trace reads: a span, a trace, and trace search pages (keyset pages newest first along the
start-time, service, route, error or trace-id index; a bounded scan; text in log lines)."""

from __future__ import annotations

import time
from typing import Any

from .. import semconv as sc
from . import _search
from ._codec import id_in, id_out
from ._reader import ERROR, SERVER, SPAN_SELECT, StoreReader
from ._records import (
    SpanRecord,
    StoreError,
    TracePage,
    TraceQuery,
    TraceSummary,
    decode_cursor,
    encode_cursor,
)
from ._search import STATUS_CLASSES, decode_log_cursor, encode_log_cursor, id_range, text_trace_ids

__all__ = ["TraceReads"]


class TraceReads(StoreReader):
    """The trace queries of :class:`~telemetry_web.store.TracingManager`."""

    def get_span(self, span_id: str, trace_id: str | None = None) -> SpanRecord | None:
        """The span with this id; give its ``trace_id`` for an indexed lookup (without it the
        whole table is read)."""
        where, params = "span_id = ?", [id_in(span_id.lower())]
        if trace_id is not None:
            key = id_in(trace_id.lower())
            where += " AND substr(trace_id, 1, 8) = substr(?, 1, 8) AND trace_id = ?"
            params.extend([key, key])
        rows = self._query(f"{SPAN_SELECT} WHERE {where} LIMIT 1", params)
        return self._span(rows[0]) if rows else None

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of the trace, by start time; a unique prefix of the id is enough."""
        trace_id = trace_id.lower()
        if not trace_id or len(trace_id) > 32 or not set(trace_id) <= set("0123456789abcdef"):
            return []
        if len(trace_id) < 32:
            low = bytes.fromhex(trace_id.ljust(32, "0"))
            high = bytes.fromhex(trace_id.ljust(32, "f"))
            ids = self._query(
                "SELECT DISTINCT trace_id FROM span_rows WHERE substr(trace_id, 1, 8) "
                "BETWEEN ? AND ? AND trace_id BETWEEN ? AND ? LIMIT 2",
                (low[:8], high[:8], low, high),
            )
            if len(ids) > 1:
                raise StoreError(f"trace id prefix {trace_id!r} matches several traces")
            if not ids:
                return []
            key = ids[0][0]
        else:
            key = bytes.fromhex(trace_id)
        rows = self._query(
            f"{SPAN_SELECT} WHERE substr(trace_id, 1, 8) = ? AND trace_id = ? "
            "ORDER BY start_ns, id",
            (key[:8], key),
        )
        return [self._span(r) for r in rows]

    def list_traces(self, query: TraceQuery | None = None) -> list[TraceSummary]:
        """The newest traces with a span matching ``query``, newest first."""
        return self.trace_page(query).traces

    def trace_page(self, query: TraceQuery | None = None) -> TracePage:
        """``list_traces`` one page at a time: the traces whose latest matching span comes
        after ``query.cursor`` (newest first, by that span's start time), and the cursor of the
        next page. Matching spans are read along an index in that order, a chunk at a time,
        until ``limit`` traces are found: nothing is grouped or sorted in full."""
        query = query or TraceQuery()
        filters = self._span_filter(query)
        if filters is None or query.limit <= 0:
            return TracePage([], None)
        where, params = filters
        cursor = decode_cursor(query.cursor)
        if query.text:
            return self._text_page(query, where, params, cursor)
        # (errors come along their own index, and a trace id prefix of 4 hex digits or more
        # picks few rows along the trace-id index: both bounded without slices)
        if query.max_scan is not None and query.status != "error" and len(query.trace_id or "") < 4:
            return self._bounded_page(query, where, params, cursor)
        found: dict[bytes, None] = {}
        earlier: set[bytes] = set()  # traces listed on an earlier page
        position, chunk, exhausted = cursor, 64, False
        while len(found) < query.limit and not exhausted:
            sql_where, sql_params = list(where), list(params)
            if position is not None:
                sql_where.append("start_ns <= ? AND (start_ns < ? OR id < ?)")
                sql_params.extend([position[0], position[0], position[1]])
            rows = self._query(
                f"SELECT id, trace_id, start_ns FROM span_rows WHERE {' AND '.join(sql_where)} "
                "ORDER BY start_ns DESC, id DESC LIMIT ?",
                [*sql_params, chunk],
            )
            exhausted = len(rows) < chunk
            for row in rows:
                position = (row["start_ns"], row["id"])
                trace = row["trace_id"]
                if trace in found or trace in earlier:
                    continue
                if cursor is not None and self._listed_before(trace, where, params, cursor):
                    earlier.add(trace)
                    continue
                found[trace] = None
                if len(found) == query.limit:
                    exhausted = exhausted and row is rows[-1]
                    break
            chunk = min(chunk * 4, 4096)
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        more = len(found) == query.limit and not exhausted and position is not None
        return TracePage(summaries, encode_cursor(position) if more and position else None)

    def _bounded_page(
        self,
        query: TraceQuery,
        where: list[str],
        params: list[Any],
        cursor: tuple[int, int] | None,
    ) -> TracePage:
        """``trace_page`` reading at most ``query.max_scan`` span rows: slices of
        ``SPAN_SLICE`` rows along the start-time index, each searched with the filters."""
        start, end = self._time_range(query)
        span_where, span_params = ["1 = 1"], []
        if start is not None:
            span_where.append("start_ns >= ?")
            span_params.append(int(start * 1e9))
        if end is not None:
            span_where.append("start_ns < ?")
            span_params.append(int(end * 1e9))
        found: dict[bytes, None] = {}
        earlier: set[bytes] = set()
        position, scanned, size = cursor, 0, 1000
        while len(found) < query.limit and scanned < (query.max_scan or 0):
            size = min(size, _search.SPAN_SLICE, (query.max_scan or 0) - scanned)
            keyset, keyset_params = list(span_where), list(span_params)
            if position is not None:
                keyset.append("start_ns <= ? AND (start_ns < ? OR id < ?)")
                keyset_params.extend([position[0], position[0], position[1]])
            bound = self._query(
                f"SELECT start_ns, id FROM span_rows INDEXED BY span_rows_start WHERE "
                f"{' AND '.join(keyset)} ORDER BY start_ns DESC, id DESC LIMIT 1 OFFSET ?",
                [*keyset_params, size - 1],
            )
            if bound:
                keyset.append("start_ns >= ? AND (start_ns > ? OR id >= ?)")
                keyset_params.extend([bound[0][0], bound[0][0], bound[0][1]])
            rows = self._lazy(
                f"SELECT id, trace_id, start_ns FROM span_rows WHERE {' AND '.join(where)} AND "
                f"{' AND '.join(keyset)} ORDER BY start_ns DESC, id DESC",
                [*params, *keyset_params],
            )
            for row in rows:
                position = (row["start_ns"], row["id"])
                trace = row["trace_id"]
                if trace in found or trace in earlier:
                    continue
                if cursor is not None and self._listed_before(trace, where, params, cursor):
                    earlier.add(trace)
                    continue
                found[trace] = None
                if len(found) == query.limit:
                    break
            else:
                if not bound:
                    position = None  # every row read
                    break
                position = (bound[0][0], bound[0][1])
                scanned, size = scanned + size, size * 4
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        return TracePage(summaries, None if position is None else encode_cursor(position))

    def _text_page(
        self, query: TraceQuery, where: list[str], params: list[Any], cursor: Any
    ) -> TracePage:
        start, end = self._time_range(query)
        found, position = text_trace_ids(
            self._query,
            self._lazy,
            text=query.text or "",
            span_where=where,
            span_params=params,
            start=start,
            end=end,
            cursor=None if cursor is None else decode_log_cursor(cursor),
            limit=query.limit,
        )
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        return TracePage(summaries, None if position is None else encode_log_cursor(position))

    @staticmethod
    def _time_range(query: TraceQuery) -> tuple[float | None, float | None]:
        """The epoch-second bounds of ``since``/``start``/``end`` (the later start wins)."""
        starts = [s for s in (query.start,) if s is not None]
        if query.since is not None:
            starts.append(time.time() - query.since)
        return (max(starts) if starts else None), query.end

    def _listed_before(
        self, trace: bytes, where: list[str], params: list[Any], cursor: tuple[int, int]
    ) -> bool:
        """Whether a matching span of the trace comes at or before the cursor (newest first):
        the trace was on an earlier page."""
        rows = self._query(
            "SELECT 1 FROM span_rows INDEXED BY span_rows_trace WHERE substr(trace_id, 1, 8) = ? "
            f"AND trace_id = ? AND {' AND '.join(where)} AND "
            "(start_ns > ? OR (start_ns = ? AND id >= ?)) LIMIT 1",
            [trace[:8], trace, *params, cursor[0], cursor[0], cursor[1]],
        )
        return bool(rows)

    def _span_filter(self, query: TraceQuery) -> tuple[list[str], list[Any]] | None:
        """The WHERE terms of a TraceQuery (None: a name no span has, so nothing matches).
        Status and kind are literals so that the partial indexes apply."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("service", query.service), ("route", query.route)):
            if value:
                string_id = self._string_id(value)
                if string_id is None:
                    return None
                where.append(f"{column} = ?")
                params.append(string_id)
        if query.route:  # routes are server spans' (and the literal lets the route index apply)
            where.append(f"kind = {SERVER}")
        if query.status == "error":
            where.append(f"status = {ERROR}")
        elif query.status == "ok":
            where.append(f"status != {ERROR}")
        elif query.status in STATUS_CLASSES:
            where.append("http_status BETWEEN ? AND ?")
            params.extend(STATUS_CLASSES[query.status])
        if query.min_duration is not None:
            where.append("duration_ns >= ?")
            params.append(int(query.min_duration * 1e9))
        start, end = self._time_range(query)
        if start is not None:
            where.append("start_ns >= ?")
            params.append(int(start * 1e9))
        if end is not None:
            where.append("start_ns < ?")
            params.append(int(end * 1e9))
        if query.trace_id is not None:
            prefix = query.trace_id.lower()
            if not 0 < len(prefix) <= 32 or not set(prefix) <= set("0123456789abcdef"):
                return None
            low, high = id_range(prefix)
            # a range on the 8-byte prefix index, then the whole id
            where.append("substr(trace_id, 1, 8) BETWEEN ? AND ? AND trace_id BETWEEN ? AND ?")
            params.extend([low[:8], high[:8], low, high])
        for key, value in query.attributes.items():
            if key == sc.ATTR_HTTP_STATUS:  # kept in its column (see _span)
                where.append("(CAST(http_status AS TEXT) = ? OR tw_attr(attributes, ?) = ?)")
                params.extend([value, key, value])
                continue
            if key == sc.ATTR_HTTP_ROUTE:
                where.append("(route IS ? OR tw_attr(attributes, ?) = ?)")
                params.extend([self._string_id(value), key, value])
                continue
            where.append("tw_attr(attributes, ?) = ?")
            params.extend([key, value])
        return where, params

    def _summary(self, trace_id: str) -> TraceSummary | None:
        spans = self.get_trace(trace_id)
        if not spans:
            return None
        ids = {s.span_id for s in spans}
        root = next((s for s in spans if s.parent_id is None or s.parent_id not in ids), spans[0])
        end = max(s.start + s.duration for s in spans)
        return TraceSummary(
            trace_id=trace_id,
            name=root.name,
            service=root.service,
            route=root.route,
            http_status=root.http_status,
            start=spans[0].start,
            duration=end - spans[0].start,
            status="error" if any(s.is_error for s in spans) else root.status,
            span_count=len(spans),
        )
