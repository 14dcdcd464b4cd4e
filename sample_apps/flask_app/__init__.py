"""The sample Flask service: ``gunicorn sample_apps.flask_app:app`` or
``flask --app sample_apps.flask_app run``.

The same endpoints as ``sample_apps.starlette_app``. Configuration comes from the environment
(``TELEMETRY_CONFIG``, ``TELEMETRY_*``, ``OTEL_*``); without any, it logs JSON lines to stdout
and answers /metrics, /health and /ready.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from flask import Flask, Response, abort, jsonify, request, stream_with_context

from telemetry_web.flask import FlaskTelemetry

app = Flask(__name__)
telemetry = FlaskTelemetry(app, service="sample-flask").telemetry
log = telemetry.get_logger("sample_flask")
stdlib_log = logging.getLogger("sample_flask.stdlib")

USERS = {1: {"id": 1, "name": "Ada"}, 2: {"id": 2, "name": "Grace"}}


@app.get("/api/users")
def list_users() -> Response:
    return jsonify(list(USERS.values()))


@app.get("/api/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    user = USERS.get(user_id)
    if user is None:
        abort(404, description="no such user")
    return jsonify(user)


@app.get("/api/fail")
def fail() -> Response:
    raise RuntimeError("the sample endpoint that always fails")


@app.get("/api/stream")
def stream() -> Response:
    def numbers() -> Iterator[str]:
        for i in range(5):
            time.sleep(0.01)
            yield f"{i}\n"

    return Response(stream_with_context(numbers()), mimetype="text/plain")


@app.post("/api/orders")
def create_order() -> tuple[Response, int]:
    order = request.get_json(silent=True) or {}
    bound = log.bind(user_id=order.get("user_id", 1), items=len(order.get("items", [])))
    bound.info("Processing order")
    stdlib_log.warning("stock is low for %s", "sku-42")
    return jsonify({"status": "accepted"}), 201
