"""The middle of the chain: ``GET /orders/{order_id}`` asks the worker to price the order.

``CHAIN_NEXT_URL=http://127.0.0.1:8001 uvicorn sample_apps.chain.api:app --port 8002``
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request

from ._service import build, trace_headers


async def order(request: Request, client: httpx.AsyncClient | None) -> dict[str, Any]:
    assert client is not None
    order_id = request.path_params["order_id"]
    response = await client.get(f"/jobs/{order_id}")
    response.raise_for_status()
    job = response.json()
    return {
        "service": "api",
        "order_id": order_id,
        "job": job,
        "received": {"api": trace_headers(request), **job["received"]},
    }


app = build("chain-api", "/orders/{order_id}", order, calls_next=True)
