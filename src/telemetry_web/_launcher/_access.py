"""The servers' own access lines under the launcher.

uvicorn, gunicorn, hypercorn, werkzeug and Django's runserver each print an access line of
their own, with the raw query string (``?token=…``) and outside our pipeline. Once a Telemetry
exists in the process, a filter on their access loggers either drops the line
(``logging.server_access_log: drop``; the default ``auto`` drops it while the request log line
covers the request) or hands it, query secrets redacted, to the pipeline as one structured line
(``json``) instead of the server's own handler. Their other lines (uvicorn's start-up,
werkzeug's banner) are left alone.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = ["ACCESS_LOGGERS", "AccessLogTakeover", "take_over_access_logs"]

#: The loggers whose records are access lines (werkzeug's: only its request lines).
ACCESS_LOGGERS = (
    "uvicorn.access",
    "gunicorn.access",
    "hypercorn.access",
    "werkzeug",
    "django.server",  # runserver's request lines
)
# A query string inside a line: up to the next space or quote.
_QUERY = re.compile(r"\?([^\s\"]*)")


class AccessLogTakeover(logging.Filter):
    """On an access logger: drop its records, or send them redacted through the pipeline."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "werkzeug" and not _werkzeug_request_line(record):
            return True
        settings = self.telemetry.settings.logging
        mode = settings.server_access_log
        if mode == "auto":
            mode = "drop" if settings.request_log else "json"
        if mode == "drop":
            return False
        redact = self.telemetry.lifecycle.redact_query
        record.msg = _QUERY.sub(lambda m: "?" + redact(m.group(1)), record.getMessage())
        record.args = None
        bridge = self.telemetry._bridge
        if bridge is None:
            return True  # no pipeline to take it: the server prints it, redacted
        bridge.handle(record)
        return False  # printed once, by the pipeline


def _werkzeug_request_line(record: logging.LogRecord) -> bool:
    # WSGIRequestHandler.log_request: '<address> - - [<date>] "%s" %s %s' with 3 arguments.
    return isinstance(record.args, tuple) and len(record.args) == 3 and '"%s" %s' in str(record.msg)


def take_over_access_logs(telemetry: Telemetry) -> None:
    """Install the filter on every access logger (once; a newer Telemetry replaces it)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, AccessLogTakeover)]:
            logger.removeFilter(existing)
        logger.addFilter(AccessLogTakeover(telemetry))
