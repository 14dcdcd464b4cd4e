"""What the framework adapters share, kept private in one place.

- ``routes/``: route templates for ASGI apps (``resolver_for(app)``, the entry-point plugins).
- ``environ.py``: reading a CGI-style request mapping (a WSGI ``environ``, Django's ``META``).
- ``scope.py``: reading an ASGI scope (the headers the lifecycle needs, query, client) and
  capturing response headers.
- ``asgi_core.py``: the ASGI middleware's request path (all of ``TelemetryMiddleware`` but its
  ``__call__``).
- ``exchange.py``: one ASGI HTTP request between the app and the server (the wrapped
  ``receive``/``send``) and how it is finished.
- ``error_responses.py``: the observer around a Starlette app's middleware stack that sees the
  response to an exception escaping the ASGI middleware.
- ``endpoints.py``: answering ``/metrics``, ``/health`` and ``/ready`` under ASGI and WSGI.

The public adapters are :mod:`telemetry_web.asgi`, :mod:`telemetry_web.wsgi`,
:mod:`telemetry_web.flask` and :mod:`telemetry_web.django`.
"""
