"""``telemetry ui``: a local web page over the store (traces, routes, a live log tail, health).

::

    telemetry ui --store .telemetry/telemetry.db          # http://127.0.0.1:8321/
    telemetry ui --host 0.0.0.0 --token "$(openssl rand -hex 16)"

The page is plain HTML, CSS and JavaScript shipped in the package (no CDN: it works offline);
its JSON endpoints read the store through read-only connections with bounded, parameterised
queries. Bound beyond loopback it needs a token, checked on every request: an
``Authorization: Bearer`` header, or ``?token=`` once on the page, which sets an HttpOnly cookie.
The UI does not instrument itself: its own requests never reach the store it shows.

Needs the ``ui`` extra (Starlette and uvicorn)::

    pip install 'telemetry-web[ui]'
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingExtraError

__all__ = ["create_app"]


def create_app(store_path: str, *, token: str | None = None) -> Any:
    """The UI's ASGI app over the store at ``store_path``; with ``token``, every request must
    carry it.

    Raises:
        MissingExtraError: Starlette is not installed.
    """
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise MissingExtraError("telemetry ui", "starlette", "ui") from None
    from ._app import create_app as build

    return build(store_path, token=token)
