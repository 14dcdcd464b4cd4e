"""Where the adapters may legitimately differ, and where they do today although they must not.

Nothing differs silently: a difference the suite tolerates is listed here with its reason.
The reference every adapter is compared with is the ASGI middleware under Starlette.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ._adapters import Call

# --- legitimate differences ------------------------------------------------------------------

# Responses that may come back without the X-Request-ID header: (adapter, call key) -> why.
RESPONSE_WITHOUT_REQUEST_ID: dict[tuple[str, str], str] = {
    # An exception escaping a plain WSGI app is answered by the WSGI server (gunicorn, waitress;
    # here `like_a_wsgi_server`), outside the middleware, which therefore cannot add the header
    # (documented in telemetry_web/wsgi.py). The span and log line still carry the id.
    ("wsgi", "fail"): "the WSGI server, not the middleware, writes the 500 of an escaped error",
}

# Span attribute keys an adapter may add or lack compared with the reference: adapter -> keys.
# Empty on purpose. Every driver here gives the lifecycle what it reads: the protocol version
# (httpx's ASGI transport sets scope["http_version"] = "1.1"; werkzeug's, Flask's and Django's
# test clients set SERVER_PROTOCOL = "HTTP/1.1"), the client address (scope["client"],
# REMOTE_ADDR) and the Host header, so network.protocol.version, client.address and
# server.address must be on every adapter's span. A server that does not report one of them
# (an ASGI server omitting http_version, a WSGI server without REMOTE_ADDR) would be listed
# here, with that reason.
ALLOWED_SPAN_KEY_DIFFERENCES: dict[str, frozenset[str]] = {}

# Request log line keys an adapter may add or lack compared with the reference. Empty on purpose:
# the line is built by the shared lifecycle from the same inputs as the span.
ALLOWED_LOG_KEY_DIFFERENCES: dict[str, frozenset[str]] = {}

# Values that legitimately differ, and are therefore not compared across adapters:
# - the route template's syntax: each adapter's label is compared with its framework's own
#   template (Starlette `{user_id:int}`, FastAPI `{user_id}`, Django/Flask `<int:user_id>`);
# - response bodies and so `http_response_size_bytes` sums: each framework renders its own
#   404/405/500 pages and JSON spacing (and a plain WSGI app's 500 is written by the server,
#   outside the middleware, so it counts 0 bytes);
# - timestamps, durations and the generated span ids.


# --- known drift: bugs in src/, to be fixed there --------------------------------------------


@dataclass(frozen=True)
class Drift:
    """Adapter behaviour that differs from the reference; ``checks`` are the tests it fails."""

    reason: str
    checks: frozenset[str]


# Adapter/request/check combinations known to differ from the reference; empty: no drift.
KNOWN_DRIFT: dict[tuple[str, str], Drift] = {}


def known_drift(request: pytest.FixtureRequest, adapter: str, call: Call, check: str) -> None:
    """Expect ``check`` to fail (strictly) where :data:`KNOWN_DRIFT` lists it for this call."""
    drift = KNOWN_DRIFT.get((adapter, call.key))
    if drift is not None and check in drift.checks:
        request.applymarker(
            pytest.mark.xfail(
                reason=f"known drift ({adapter}, {call.key}): {drift.reason}", strict=True
            )
        )
