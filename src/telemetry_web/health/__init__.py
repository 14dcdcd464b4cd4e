"""Health checks: dependencies checked in the background, liveness and readiness endpoints.

From the configuration::

    health:
      checks:
        - name: db
          check: {sqlalchemy: {url: "postgresql+psycopg://app@db/orders"}}
          interval: 10s
          timeout: 2s
          unhealthy_threshold: 3      # consecutive failures before it counts as unhealthy
          healthy_threshold: 1        # consecutive successes before it recovers
          critical: true              # only critical checks decide readiness
        - {name: cache, check: {redis: {url: "redis://cache:6379/0"}}, critical: false}
        - {name: payments, check: {http: {url: "http://payments/health", expected_status: 200}}}
        - {name: smtp, check: {tcp: {host: mail, port: 25}}}
        - {name: queue, check: {script: {command: "/usr/local/bin/check-queue --quick"}}}
        - {name: scratch, check: {disk: {path: /tmp, min_free: 1GB}}}
        - {name: quota, check: {function: {target: "orders.health:quota_left"}}}

Or in code, with the app's own engine and client::

    telemetry.add_health_check("db", engine)                 # SELECT 1; Engine or AsyncEngine
    telemetry.add_health_check("cache", redis_client, critical=False)   # PING; sync or async

    @telemetry.health_check("quota", interval=30, timeout=2)
    async def quota_left() -> bool:                          # None/True healthy, False or an
        return await billing.remaining() > 0                 # exception unhealthy

Checks run in the background, never inside a probe: as a task on the app's event loop under
ASGI (started and stopped by the lifespan) and in a daemon thread under WSGI, Flask and Django
(started with the app). Each run is cut at its timeout and counted as a failure. ``/ready``
answers from the latest results: 503 until every critical check has a first result, then 200
while every critical check is healthy. ``/health`` answers 200 while the process serves
(``health.max_event_loop_lag`` adds a limit on the event loop's lag under ASGI).
"""

from __future__ import annotations

from ._checks import Check, DiskCheck, FunctionCheck, HttpCheck, ScriptCheck, TcpCheck
from ._clients import RedisCheck, SqlAlchemyCheck
from ._health import Health
from ._report import QUERY_KEY
from ._state import Outcome

__all__ = [
    "QUERY_KEY",
    "Check",
    "DiskCheck",
    "FunctionCheck",
    "Health",
    "HttpCheck",
    "Outcome",
    "RedisCheck",
    "ScriptCheck",
    "SqlAlchemyCheck",
    "TcpCheck",
]
