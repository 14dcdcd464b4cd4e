"""A Django URLconf for the instrumentor tests: one view querying PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path

# Filled in by the test: the engine, the Redis client and the key function it uses.
STATE: dict[str, Any] = {}


def user(request: HttpRequest, user_id: int) -> JsonResponse:
    from sqlalchemy import text

    engine, cache, key = STATE["engine"], STATE["cache"], STATE["key"]
    with engine.connect() as conn:
        name = conn.execute(text("SELECT 'user ' || :id"), {"id": str(user_id)}).scalar()
    cache.set(key(str(user_id)), name)
    return JsonResponse({"name": name, "cached": cache.get(key(str(user_id))).decode()})


urlpatterns = [path("users/<int:user_id>", user)]
