"""The end of the chain: ``GET /jobs/{job_id}`` does the work and calls no one.

``uvicorn sample_apps.chain.worker:app --port 8001``
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request

from ._service import build, trace_headers


async def job(request: Request, client: httpx.AsyncClient | None) -> dict[str, Any]:
    return {
        "service": "worker",
        "job_id": request.path_params["job_id"],
        "total": 42,
        "received": {"worker": trace_headers(request)},
    }


app = build("chain-worker", "/jobs/{job_id}", job, calls_next=False)
