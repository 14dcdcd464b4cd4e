"""Apps served by real servers in test_servers.py: one health check that records which process
ran it (the file named by ``HEALTH_TEST_PIDS``), under WSGI and under ASGI."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.wsgi import TelemetryWSGIMiddleware

telemetry = Telemetry(
    service="served",
    use_env=False,
    # No local store: it would be the server's working directory's (the repository's).
    config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
)


@telemetry.health_check("recorder", interval=0.05)
def recorder() -> None:
    with open(os.environ["HEALTH_TEST_PIDS"], "a") as out:
        out.write(f"{os.getpid()}\n")


def _hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"hello"]


wsgi_app = TelemetryWSGIMiddleware(_hello, telemetry=telemetry)
asgi_app = TelemetryMiddleware(Starlette(), telemetry=telemetry)
