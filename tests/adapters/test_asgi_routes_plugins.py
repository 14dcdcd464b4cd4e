"""Route resolvers registered by a distribution in the ``telemetry_web.route_resolvers``
entry-point group, in a fresh interpreter that sees a real ``*.dist-info`` directory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TINY_FRAMEWORK = '''
"""A framework telemetry-web knows nothing about, and the plugin it ships."""


class TinyApp:
    def __init__(self, table):
        self.tiny_table = table  # path prefix -> template

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tiny"})


def route_resolver(app):
    table = getattr(app, "tiny_table", None)
    if table is None:
        return None

    def resolve(scope):
        for prefix, template in table.items():
            if scope["path"].startswith(prefix):
                return template
        return None

    return resolve


def broken(app):
    raise RuntimeError("plugin bug")
'''

DRIVER = """
import asyncio, json, httpx
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from telemetry_web import Telemetry, TelemetryMiddleware
from tinyframework import TinyApp


async def ok(request):
    return PlainTextResponse("ok")


def labels(app, paths):
    tel = Telemetry(config={"service": "plugins", "logging": {"sinks": {"console": False}}},
                    use_env=False)

    async def run():
        transport = httpx.ASGITransport(app=TelemetryMiddleware(app, telemetry=tel))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in paths:
                assert (await client.get(path)).status_code == 200
            return (await client.get("/metrics")).text

    text = asyncio.run(run())
    tel.shutdown()
    found = set()
    for line in text.splitlines():
        if line.startswith("http_requests_total{"):
            found.add(line.split('route="', 1)[1].split('"', 1)[0])
    return sorted(found)


starlette = Starlette(routes=[Route("/pets/{name}", ok)])
starlette.tiny_table = {"/pets/": "/from-plugin"}  # a built-in source wins over plugins
print(json.dumps({
    "tiny": labels(TinyApp({"/pets/": "/pets/{pet_id}"}), ["/pets/1", "/pets/2", "/other/9"]),
    "wrapped": labels(GZipMiddleware(TinyApp({"/pets/": "/pets/{pet_id}"})), ["/pets/1"]),
    "starlette": labels(starlette, ["/pets/rex"]),
}))
"""


def _run(tmp_path: Path, entry_points: str | None) -> dict[str, list[str]]:
    (tmp_path / "tinyframework.py").write_text(TINY_FRAMEWORK)
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    if entry_points is not None:
        dist = tmp_path / "tinyframework-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyframework\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(entry_points)
    result = subprocess.run(
        [sys.executable, "driver.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_resolver_from_an_entry_point_labels_an_unknown_framework(tmp_path: Path) -> None:
    """A plugin's resolver labels the app it understands (also behind middleware); the
    built-in Starlette source still labels Starlette apps."""
    found = _run(tmp_path, "[telemetry_web.route_resolvers]\ntiny = tinyframework:route_resolver\n")
    assert found == {
        "tiny": ["/pets/{pet_id}", "<unmatched>"],
        "wrapped": ["/pets/{pet_id}"],
        "starlette": ["/pets/{name}"],
    }


@pytest.mark.parametrize(
    "entry_points",
    [None, "[telemetry_web.route_resolvers]\nbroken = tinyframework:broken\n"],
    ids=["no-plugin", "broken-plugin"],
)
def test_without_a_resolver_the_label_is_unmatched(
    tmp_path: Path, entry_points: str | None
) -> None:
    """With no plugin (or a failing one) an unknown app is labelled ``<unmatched>``, never with
    its raw path, and its requests still succeed."""
    found = _run(tmp_path, entry_points)
    assert found == {
        "tiny": ["<unmatched>"],
        "wrapped": ["<unmatched>"],
        "starlette": ["/pets/{name}"],
    }
