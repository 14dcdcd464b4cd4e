"""The core imports and works without any web framework; a missing extra names itself."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap

import pytest

# Frameworks and clients that are optional extras: the core must not import them.
OPTIONAL = ["starlette", "fastapi", "django", "flask", "sqlalchemy", "redis", "asgiref"]


def run_hidden(code: str, hidden: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where importing any of ``hidden`` fails."""
    prelude = textwrap.dedent(
        f"""
        import sys
        HIDDEN = {hidden!r}
        for name in HIDDEN:
            sys.modules[name] = None  # `import name` now raises ImportError
        """
    )
    # Run from a directory of its own: a Telemetry built there keeps its local store
    # (./.telemetry) in it, not in the repository's working tree.
    with tempfile.TemporaryDirectory(prefix="telemetry-hidden-") as cwd:
        return subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )


def test_core_imports_without_frameworks() -> None:
    """`import telemetry_web` and building a Telemetry need none of the optional libraries."""
    result = run_hidden(
        """
        import telemetry_web
        t = telemetry_web.Telemetry(service="x", use_env=False,
                                    config={"logging": {"sinks": {"console": False}}})
        t.shutdown()
        assert not any(sys.modules.get(m) for m in HIDDEN)
        print("ok")
        """,
        OPTIONAL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_asgi_middleware_serves_a_plain_asgi_app_without_starlette() -> None:
    """The ASGI middleware is pure ASGI: a bare ASGI callable works with Starlette absent."""
    result = run_hidden(
        """
        import asyncio
        from prometheus_client import generate_latest
        from telemetry_web import Telemetry, TelemetryMiddleware

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        t = Telemetry(service="x", use_env=False, config={"logging": {"sinks": {"console": False}}})
        wrapped = TelemetryMiddleware(app, telemetry=t)
        sent = []
        async def receive():
            return {"type": "http.request", "body": b""}
        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "GET", "path": "/anything", "headers": [],
                 "query_string": b"", "scheme": "http"}
        asyncio.run(wrapped(scope, receive, send))
        assert sent[0]["status"] == 204
        text = generate_latest(t.registry).decode()
        assert 'route="<unmatched>"' in text and 'status="204"' in text, text
        t.shutdown()
        print("ok")
        """,
        OPTIONAL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_missing_exporter_extra_names_the_extra() -> None:
    """Asking for the OTLP exporter without its distribution says which extra to install."""
    result = run_hidden(
        """
        from telemetry_web import Telemetry, MissingExtraError
        try:
            Telemetry(service="x", use_env=False,
                      config={"tracing": {"exporters": {"otlp": {}}},
                              "logging": {"sinks": {"console": False}}})
        except MissingExtraError as exc:
            print(exc)
        """,
        [
            "opentelemetry.exporter.otlp",
            "opentelemetry.exporter.otlp.proto.http",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "tracing.exporters.otlp needs 'opentelemetry-exporter-otlp', which is not installed: "
        "pip install 'telemetry-web[otlp]'"
    )


# Exporter libraries that are optional extras; hidden with the frameworks below.
EXPORTERS = [
    "opentelemetry.exporter.otlp",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.zipkin",
    "opentelemetry.exporter.zipkin.json",
    "thrift",
]


def test_request_is_served_with_every_optional_package_missing() -> None:
    """With every framework and exporter library hidden and the environment asking for b3
    propagation, importing telemetry_web and serving a request through the ASGI middleware
    works."""
    result = run_hidden(
        """
        import asyncio, os
        os.environ["OTEL_PROPAGATORS"] = "tracecontext,b3multi,xray"
        import telemetry_web
        from telemetry_web import Telemetry, TelemetryMiddleware

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        t = Telemetry(service="x", config={"logging": {"sinks": {"console": False}}})
        sent = []
        async def receive():
            return {"type": "http.request", "body": b""}
        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                 "scheme": "http", "headers": [(b"x-b3-traceid", b"1" * 32),
                                               (b"x-b3-spanid", b"2" * 16)]}
        asyncio.run(TelemetryMiddleware(app, telemetry=t)(scope, receive, send))
        assert sent[0]["status"] == 200
        t.shutdown(timeout=1)
        assert not any(sys.modules.get(m) for m in HIDDEN)
        print("ok")
        """,
        OPTIONAL + EXPORTERS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert "ignoring 'xray' in OTEL_PROPAGATORS" in result.stderr


@pytest.mark.parametrize(
    ("exporters", "hidden", "message"),
    [
        pytest.param(
            {"otlp": {"protocol": "grpc"}},
            ["opentelemetry.exporter.otlp.proto.grpc.trace_exporter"],
            "tracing.exporters.otlp needs 'opentelemetry-exporter-otlp', which is not installed: "
            "pip install 'telemetry-web[otlp]'",
            id="otlp-grpc",
        ),
        pytest.param(
            {"zipkin": {}},
            ["opentelemetry.exporter.zipkin", "opentelemetry.exporter.zipkin.json"],
            "pip install 'telemetry-web[zipkin]'",
            id="zipkin",
        ),
        pytest.param(
            {"jaeger": {}},
            ["thrift"],
            "tracing.exporters.jaeger needs 'thrift', which is not installed: "
            "pip install 'telemetry-web[jaeger]'",
            id="jaeger",
        ),
    ],
)
def test_configured_exporter_without_its_extra_is_a_missing_extra_error(
    exporters: dict[str, object], hidden: list[str], message: str
) -> None:
    """An exporter asked for in the configuration without its library fails Telemetry() at
    startup with the MissingExtraError naming the pip command (never the import)."""
    result = run_hidden(
        f"""
        import telemetry_web
        from telemetry_web import Telemetry, MissingExtraError
        try:
            Telemetry(service="x", use_env=False,
                      config={{"tracing": {{"exporters": {exporters!r}}},
                              "logging": {{"sinks": {{"console": False}}}}}})
        except MissingExtraError as exc:
            print(exc)
        """,
        hidden,
    )
    assert result.returncode == 0, result.stderr
    assert message in result.stdout.strip()
