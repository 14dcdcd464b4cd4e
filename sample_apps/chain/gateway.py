"""The edge of the chain: ``GET /checkout/{order_id}`` asks the api for the order.

``CHAIN_NEXT_URL=http://127.0.0.1:8002 uvicorn sample_apps.chain.gateway:app --port 8000``
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request

from ._service import build


async def checkout(request: Request, client: httpx.AsyncClient | None) -> dict[str, Any]:
    assert client is not None
    response = await client.get(f"/orders/{request.path_params['order_id']}")
    response.raise_for_status()
    order = response.json()
    return {"service": "gateway", "order": order, "received": order["received"]}


app = build("chain-gateway", "/checkout/{order_id}", checkout, calls_next=True)
