"""Route reads: per-route counts, errors and nearest-rank percentiles along the per-route
latency index, a route's slowest traces, its per-interval series and the known routes."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ._codec import id_out
from ._reader import ERROR, SERVER
from ._records import RouteStats, StoreError, TraceSummary
from ._search import SLOWEST_SQL, RoutePoint, route_names, route_series, slowest_trace_ids
from ._traces import TraceReads

__all__ = ["RouteReads"]


class RouteReads(TraceReads):
    """The route queries of :class:`~telemetry_web.store.TracingManager` (the slowest traces
    come back as trace summaries)."""

    def route_stats(
        self, service: str | None = None, since: float | None = None
    ) -> list[RouteStats]:
        """Per service and route of the server spans: count, errors and the nearest-rank
        latency percentiles, counted in SQL along the per-route latency index (the p95 and p99
        from its slow end)."""
        where: list[str] = [f"kind = {SERVER}"]
        params: list[Any] = []
        if service:
            service_id = self._string_id(service)
            if service_id is None:
                return []
            where.append("service = ?")
            params.append(service_id)
        cutoff = None if since is None else int((time.time() - since) * 1e9)
        oldest = self._query("SELECT MIN(start_ns) FROM span_rows")[0][0]
        if cutoff is not None and oldest is not None and cutoff > oldest:
            # (a window reaching back past the oldest span filters nothing: left out, the
            # counts and ranks walk the index without reading each entry's start time)
            where.append("start_ns >= ?")
            params.append(cutoff)
        # routed spans grouped along the route index alone; the rare server spans without a
        # route (not HTTP) by name
        # (errors counted along the small errors index: summing them here costs more than the
        # count itself)
        errors = {
            (r[0], r[1]): r[2]
            for r in self._query(
                "SELECT route, service, COUNT(*) FROM span_rows INDEXED BY span_rows_errors "
                f"WHERE {' AND '.join(where)} AND status = {ERROR} AND route IS NOT NULL "
                "GROUP BY route, service",
                params,
            )
        }
        groups = [
            (svc, route, None, count, errors.get((route, svc), 0))
            for route, svc, count in self._query(
                f"SELECT route, service, COUNT(*) FROM span_rows "
                f"WHERE {' AND '.join(where)} AND route IS NOT NULL GROUP BY route, service",
                params,
            )
        ] + self._query(
            f"SELECT service, NULL, name, COUNT(*), SUM(status = {ERROR}) FROM span_rows "
            f"WHERE {' AND '.join(where)} AND route IS NULL GROUP BY name, service",
            params,
        )
        found = []
        for svc, route, name, count, failed in groups:
            group = [*where, "service = ?", "route IS ?", "(route IS NOT NULL OR name = ?)"]
            group_params = [*params, svc, route, name]
            ranks = [int(max(1, -(-count * q // 100))) for q in (50, 95, 99)]
            p50, p95, p99 = (self._nth(group, group_params, count, r) for r in ranks)
            found.append(
                RouteStats(
                    service=self._string(svc) or "",
                    route=self._string(route) or self._string(name) or "",
                    count=count,
                    errors=failed,
                    p50=p50,
                    p95=p95,
                    p99=p99,
                )
            )
        return sorted(found, key=lambda r: (r.service, r.route))

    def _nth(self, where: list[str], params: list[Any], count: int, rank: int) -> float:
        """The ``rank``-th smallest duration of the ``count`` matching server spans, walked
        from whichever end of the latency index is nearer."""
        ascending = rank <= count // 2
        rows = self._query(
            f"SELECT duration_ns FROM span_rows WHERE {' AND '.join(where)} "
            f"ORDER BY duration_ns {'' if ascending else 'DESC'} LIMIT 1 OFFSET ?",
            [*params, rank - 1 if ascending else count - rank],
        )
        return rows[0][0] / 1e9 if rows else 0.0

    def slowest_traces(
        self, service: str, route: str, start: float, end: float | None = None, limit: int = 20
    ) -> list[TraceSummary]:
        """The traces of a route's slowest server spans started in [start, end), slowest
        first, each once; read down the per-route latency index from its slow end."""
        ids = self._route_ids(service, route)
        if ids is None or limit <= 0:
            return []
        end_ns = 2**63 - 1 if end is None else int(end * 1e9)
        try:
            rows = self._conn.execute(SLOWEST_SQL, [ids[1], ids[0], int(start * 1e9), end_ns])
            found = slowest_trace_ids(rows, limit)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None
        return [s for s in map(self._summary, map(id_out, found)) if s is not None]

    def route_series(
        self, service: str, route: str, start: float, end: float, step: float
    ) -> list[RoutePoint]:
        """A route's server spans per ``step`` seconds in [start, end): one point per interval
        that had requests, with their rate, error ratio and nearest-rank p50/p95/p99."""
        ids = self._route_ids(service, route)
        if ids is None:
            return []
        return route_series(self._query, ids[0], ids[1], start, end, step)

    def route_names(self, since: float | None = None) -> list[tuple[str, str]]:
        """The (service, route) pairs ``route_stats`` would list, without counting them: a
        route-less server span (not HTTP) goes by its name."""
        since_ns = None if since is None else int((time.time() - since) * 1e9)
        return sorted(
            (self._string(service) or "", self._string(name) or "")
            for service, name, _ in route_names(self._query, since_ns)
        )

    def _route_ids(self, service: str, route: str) -> tuple[int, int] | None:
        service_id, route_id = self._string_id(service), self._string_id(route)
        if service_id is None or route_id is None:
            return None
        return service_id, route_id
