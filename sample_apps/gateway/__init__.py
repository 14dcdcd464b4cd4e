"""A gateway (Starlette + httpx reverse proxy) in front of two small services.

Each is a Starlette app behind ``TelemetryMiddleware``, run as its own uvicorn process::

    uvicorn sample_apps.gateway.services:orders --port 8001
    uvicorn sample_apps.gateway.services:inventory --port 8002
    GATEWAY_ORDERS_URL=http://127.0.0.1:8001 GATEWAY_INVENTORY_URL=http://127.0.0.1:8002 \\
        uvicorn sample_apps.gateway.app:app --port 8000

``/api/orders/{path}`` goes to the ``orders`` upstream, ``/api/inventory/{path}`` to
``inventory``; a 502/503 or a refused connection is retried once, an attempt taking longer than
``GATEWAY_UPSTREAM_TIMEOUT`` seconds (default 1) is answered 504. ``/ping`` is the gateway's
own probe: never traced, no request log line, no size metrics. ``GATEWAY_SAMPLE_RATE`` (default
0.1) is the share of other requests traced.
"""
