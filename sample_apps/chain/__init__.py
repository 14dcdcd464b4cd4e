"""A three-service chain, gateway → api → worker, for one trace across processes.

Each service is a Starlette app behind ``TelemetryMiddleware``, run as its own uvicorn process::

    CHAIN_NEXT_URL=http://127.0.0.1:8002 uvicorn sample_apps.chain.gateway:app --port 8000
    CHAIN_NEXT_URL=http://127.0.0.1:8001 uvicorn sample_apps.chain.api:app --port 8002
    uvicorn sample_apps.chain.worker:app --port 8001

``GET /checkout/{order_id}`` on the gateway calls ``GET /orders/{order_id}`` on the api, which
calls ``GET /jobs/{order_id}`` on the worker; the gateway and the api call the next service
with an ``httpx.AsyncClient`` instrumented by ``HttpxInstrumentor`` (a CLIENT span per call, the
trace context in its headers). Every response carries the trace headers each downstream service
received, under ``"received"``.

Configuration comes from the environment as for any service (``TELEMETRY_*``, ``OTEL_*``):
``OTEL_EXPORTER_OTLP_ENDPOINT`` for the spans, ``TELEMETRY_TRACING__PROPAGATION`` for the
header formats, ``TELEMETRY_TRACING__SAMPLING`` for the sampler.
"""
