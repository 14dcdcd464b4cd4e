"""Any WSGI app: ``from telemetry_web.wsgi import TelemetryWSGIMiddleware``.

Pure WSGI, no framework needed. See :mod:`telemetry_web.adapters.wsgi`.
"""

from __future__ import annotations

from .adapters.wsgi import TelemetryWSGIMiddleware, WSGIRouteResolver

__all__ = ["TelemetryWSGIMiddleware", "WSGIRouteResolver"]
