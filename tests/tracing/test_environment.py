"""No environment variable can fail an import of telemetry_web or a request: a bad value gets
one warning naming the variable, the value and the default used (issue 12, item 1), and
``OTEL_PROPAGATORS=b3,b3multi`` works without the contrib packages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry_web import Telemetry, TelemetryMiddleware, _otel_env
from telemetry_web.errors import ConfigError

TRACE_ID = "463ac35c9f6413ad48485a3953bb6124"
PARENT_ID = "a2fb4a1d1a96d312"

# A fresh interpreter: import telemetry_web, build a Telemetry from the environment, serve one
# request through TelemetryMiddleware with `headers`; the app injects the global propagator's
# headers into an outbound carrier. Prints one JSON line.
APP = """
import asyncio, json, sys
import telemetry_web  # first: an app importing opentelemetry.propagate before us is on its own
from opentelemetry import propagate
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry_web import Telemetry, TelemetryMiddleware

exporter = InMemorySpanExporter()
telemetry = Telemetry(service="env-test", span_exporters=[exporter],
                      config={"logging": {"sinks": {"console": False}}})
outbound = {}

async def app(scope, receive, send):
    propagate.inject(outbound)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

async def main():
    sent = []
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        sent.append(message)
    headers = [(k.encode(), v.encode()) for k, v in json.loads(sys.argv[1]).items()]
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": headers,
             "query_string": b"", "scheme": "http", "server": ("127.0.0.1", 80)}
    await TelemetryMiddleware(app, telemetry=telemetry)(scope, receive, send)
    return sent[0]["status"]

status = asyncio.run(main())
telemetry.tracer_provider.force_flush()
spans = exporter.get_finished_spans()
server = spans[0] if spans else None
print(json.dumps({
    "status": status,
    "outbound": {k.lower(): v for k, v in outbound.items()},
    "trace_id": f"{server.context.trace_id:032x}" if server else None,
    "span_id": f"{server.context.span_id:016x}" if server else None,
    "parent_id": f"{server.parent.span_id:016x}" if server and server.parent else None,
}))
telemetry.shutdown(timeout=1)
"""


def clean_env(**variables: str) -> dict[str, str]:
    """The test process's environment without any OTEL_*/TELEMETRY_* variable, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    env.update(variables)
    return env


def serve_once(
    tmp_path: Path, headers: dict[str, str] | None = None, **variables: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run APP in a fresh interpreter; the completed process and its JSON line."""
    result = subprocess.run(
        [sys.executable, "-c", APP, json.dumps(headers or {})],
        env=clean_env(**variables),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetry-web: ")]


# --- OTEL_PROPAGATORS ---------------------------------------------------------------------------


def test_b3_single_header_from_otel_propagators_is_extracted_and_injected(tmp_path: Path) -> None:
    """OTEL_PROPAGATORS=tracecontext,baggage,b3,b3multi imports, continues a b3 caller's span
    and injects b3 and X-B3-* headers of the same trace; no warning."""
    result, out = serve_once(
        tmp_path,
        {"b3": f"{TRACE_ID}-{PARENT_ID}-1"},
        OTEL_PROPAGATORS="tracecontext,baggage,b3,b3multi",
    )
    assert warnings_in(result.stderr) == []
    assert out["status"] == 200
    assert (out["trace_id"], out["parent_id"]) == (TRACE_ID, PARENT_ID)
    assert out["outbound"]["b3"] == f"{TRACE_ID}-{out['span_id']}-1"
    assert out["outbound"]["x-b3-traceid"] == TRACE_ID
    assert out["outbound"]["x-b3-spanid"] == out["span_id"]
    assert out["outbound"]["traceparent"] == f"00-{TRACE_ID}-{out['span_id']}-01"


def test_b3_multi_headers_from_otel_propagators_are_extracted(tmp_path: Path) -> None:
    """OTEL_PROPAGATORS=b3multi alone: X-B3-* headers are continued and injected, nothing
    else is."""
    result, out = serve_once(
        tmp_path,
        {"x-b3-traceid": TRACE_ID, "x-b3-spanid": PARENT_ID, "x-b3-sampled": "1"},
        OTEL_PROPAGATORS="b3multi",
    )
    assert warnings_in(result.stderr) == []
    assert (out["trace_id"], out["parent_id"]) == (TRACE_ID, PARENT_ID)
    assert out["outbound"] == {
        "x-b3-traceid": TRACE_ID,
        "x-b3-spanid": out["span_id"],
        "x-b3-sampled": "1",
    }


@pytest.mark.parametrize(
    ("value", "left_out", "used"),
    [
        ("tracecontext,baggage,xray", "'xray'", "tracecontext,baggage"),
        ("xray,ottrace", "'xray', 'ottrace'", "tracecontext,baggage"),
        ("b3,not a propagator!", "'not a propagator!'", "b3"),
        ("tracecontext,,  ,💥", "'💥'", "tracecontext"),
    ],
)
def test_unknown_propagators_are_left_out_with_one_warning(
    tmp_path: Path, value: str, left_out: str, used: str
) -> None:
    """Names no installed distribution registers are left out with one warning naming the
    variable, the names and what is used; requests are served."""
    result, out = serve_once(tmp_path, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
                             OTEL_PROPAGATORS=value)  # fmt: skip
    assert out["status"] == 200
    warnings = warnings_in(result.stderr)
    assert len(warnings) == 1, result.stderr
    assert f"ignoring {left_out} in OTEL_PROPAGATORS={value!r}" in warnings[0]
    assert warnings[0].endswith(f"using {used}")
    if "tracecontext" in used:
        assert out["parent_id"] == PARENT_ID


def test_importing_opentelemetry_propagate_alone_finds_our_b3() -> None:
    """Another library importing opentelemetry.propagate with OTEL_PROPAGATORS=b3,b3multi gets
    our propagators through the entry points (no contrib package installed)."""
    code = (
        "from opentelemetry import propagate;"
        "print([type(p).__name__ for p in propagate.get_global_textmap()._propagators])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(OTEL_PROPAGATORS="b3,b3multi"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['B3SinglePropagator', 'B3MultiPropagator']"


def test_the_variable_is_restored_after_the_import() -> None:
    """The guard narrows OTEL_PROPAGATORS only while opentelemetry.propagate is imported:
    child processes see the value the deployment set."""
    code = "import os, telemetry_web; print(os.environ['OTEL_PROPAGATORS'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(OTEL_PROPAGATORS="xray,b3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "xray,b3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("tracecontext,baggage", [])),
        (" , ,", ("tracecontext,baggage", [])),
        ("none", ("none", [])),
        ("b3,None", ("none", [])),
        ("tracecontext , b3multi", ("tracecontext,b3multi", [])),
        ("xray", ("tracecontext,baggage", ["xray"])),
        ("jaeger,b3", ("b3", ["jaeger"])),
        ("B3", ("tracecontext,baggage", ["B3"])),  # entry-point names are case-sensitive
    ],
)
def test_sanitised_propagators(value: str, expected: tuple[str, list[str]]) -> None:
    """The value the guard imports with: loadable names in order, 'none' as none, the SDK's
    default when nothing is left."""
    assert _otel_env.sanitised_propagators(value) == expected


# --- one subprocess per bad variable --------------------------------------------------------------

BAD_VARIABLES = [
    pytest.param(
        {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
        "ignoring OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG: tracing.sampling.type: expected "
        "one of",
        id="sampler",
    ),
    pytest.param(
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "lots"},
        "ignoring OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG: tracing.sampling.rate: expected "
        "a positive number, got 'lots'",
        id="sampler-arg",
    ),
    pytest.param(
        {"OTEL_RESOURCE_ATTRIBUTES": "team=payments,garbage,=x"},
        "ignoring 'garbage', '=x' in OTEL_RESOURCE_ATTRIBUTES",
        id="resource-attributes",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "not a url"},
        "ignoring OTEL_EXPORTER_OTLP_ENDPOINT='not a url': expected a URL",
        id="otlp-endpoint",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:99999"},
        "ignoring OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='http://collector:99999': not a URL",
        id="otlp-endpoint-port",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
        "ignoring OTEL_EXPORTER_OTLP_PROTOCOL: tracing.exporters.otlp.protocol: expected one of",
        id="otlp-protocol",
    ),
    pytest.param(
        {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "many"},
        "ignoring OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT='many': expected a non-negative integer; "
        "using 128",
        id="span-limit",
    ),
    pytest.param(
        {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "-5"},
        "ignoring OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT='-5': expected a non-negative integer; "
        "using no limit",
        id="length-limit",
    ),
    pytest.param(
        {"TELEMETRY_LOGGING__LEVEL": "loud"},
        "ignoring TELEMETRY_LOGGING__LEVEL: logging.level: expected one of",
        id="telemetry-variable",
    ),
    pytest.param(
        {"TELEMETRY_TRACNG__ENABLED": "yes"},
        "ignoring TELEMETRY_TRACNG__ENABLED: tracng: unknown key (did you mean 'tracing'?)",
        id="telemetry-unknown-key",
    ),
]


@pytest.mark.parametrize(("variables", "warning"), BAD_VARIABLES)
def test_bad_variable_is_one_warning_and_requests_are_served(
    tmp_path: Path, variables: dict[str, str], warning: str
) -> None:
    """A fresh interpreter imports telemetry_web, builds its Telemetry from the environment and
    serves a request continuing the caller's trace; stderr has one warning for the variable."""
    result, out = serve_once(
        tmp_path, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}, **variables
    )
    assert out["status"] == 200
    assert out["parent_id"] == PARENT_ID
    warnings = warnings_in(result.stderr)
    assert len(warnings) == 1, result.stderr
    assert warning in warnings[0]


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
        {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-1"},
        {"OTEL_EXPORTER_OTLP_HEADERS": "a,b=c=d,%%%"},
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "zip"},
        {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent.pem"},
        {"OTEL_SDK_DISABLED": "perhaps"},
        {"OTEL_SDK_DISABLED": "true"},
    ],
    ids=lambda v: "=".join(next(iter(v.items()))),
)
def test_variables_the_sdk_reads_never_fail_a_request(
    tmp_path: Path, variables: dict[str, str]
) -> None:
    """Variables read by the SDK and the OTLP exporter themselves (timeouts, headers,
    compression, certificates, OTEL_SDK_DISABLED) never fail the import or a request, with an
    OTLP exporter configured in a TELEMETRY_CONFIG file."""
    config = {"tracing": {"exporters": {"otlp": {"endpoint": "http://127.0.0.1:9"}}}}
    path = write_config(tmp_path, config)
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    _, out = serve_once(tmp_path, headers, TELEMETRY_CONFIG=path, **variables)
    assert out["status"] == 200
    assert out["parent_id"] == PARENT_ID


def write_config(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "telemetry.json.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


def test_bad_config_file_is_still_an_error_at_startup(tmp_path: Path) -> None:
    """A bad value in the TELEMETRY_CONFIG file fails Telemetry() with the ConfigError naming
    the key path, even when the environment is bad too (which only warns)."""
    path = write_config(tmp_path, {"tracing": {"sampling": {"type": "sometimes"}}})
    code = "import telemetry_web; telemetry_web.Telemetry(service='x')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(TELEMETRY_CONFIG=path, OTEL_PROPAGATORS="xray"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ConfigError: invalid telemetry configuration in" in result.stderr
    assert "tracing.sampling.type: expected one of" in result.stderr
    assert "got 'sometimes'" in result.stderr


# --- in-process fuzz: every variable our code reads, many bad values -----------------------------

GARBAGE = [
    "",
    " ",
    "garbage",
    "-1",
    "1e999",
    "nan",
    "0x10",
    "true",
    "None",
    "[1, 2",
    "{a: b}",
    "a=b,c",
    ",,,",
    "=",
    "%%%",
    "💥",
    "a\tb\nc",
    "'quoted'",
    "x" * 5000,
    "http://",
    "http://[::1",
    "ftp://host",
]
VARIABLES = [
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SDK_DISABLED",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
    "TELEMETRY_SERVICE",
    "TELEMETRY_ENVIRONMENT",
    "TELEMETRY_LOGGING__LEVEL",
    "TELEMETRY_LOGGING__SINKS__CONSOLE",
    "TELEMETRY_TRACING",
    "TELEMETRY_TRACING__ENABLED",
    "TELEMETRY_TRACING__SAMPLING",
    "TELEMETRY_TRACING__SAMPLING__RATE",
    "TELEMETRY_TRACING__PROPAGATION",
    "TELEMETRY_TRACING__RESOURCE_ATTRIBUTES",
    "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY",
    "TELEMETRY_TRACING__EXPORTERS__OTLP__ENDPOINT",
    "TELEMETRY_METRICS",
    "TELEMETRY_METRICS__ENABLED",
    "TELEMETRY_HTTP__EXCLUDE_PATHS",
    "TELEMETRY_HEALTH__ENDPOINTS",
    "TELEMETRY_STORE",
    "TELEMETRY_LABELS",
    "TELEMETRY_",
    "TELEMETRY___",
    "TELEMETRY_NOT__A__KEY",
]


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_*/TELEMETRY_* variable of the machine leaks in; warnings start afresh."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "TELEMETRY_")):
            monkeypatch.delenv(name)
    _otel_env._warned.clear()
    yield
    _otel_env._warned.clear()


async def _request(app: Any) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/x", "query_string": b"", "scheme": "http",
        "headers": [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())],
    }  # fmt: skip
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.usefixtures("clean_environ")
@pytest.mark.parametrize("value", GARBAGE, ids=range(len(GARBAGE)))
@pytest.mark.parametrize("variable", VARIABLES)
def test_fuzz_no_variable_value_fails_telemetry_or_a_request(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    variable: str,
    value: str,
) -> None:
    """Any value of any variable we or the SDK read: Telemetry() is built, a request is served
    (200), and there is at most one warning, which names the variable."""
    monkeypatch.setenv(variable, value)
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(
        config={
            "logging": {"sinks": {"console": False}},
            # The store as by default (the variables may touch it), in the test's directory.
            "store": {"path": str(tmp_path / ".telemetry" / "telemetry.db")},
        },
        span_exporters=[exporter],
        set_global=False,
        capture_stdlib_logging=False,
    )
    try:
        status = asyncio.run(_request(TelemetryMiddleware(_ok, telemetry=telemetry)))
    finally:
        telemetry.shutdown(timeout=0.5)
    assert status == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "telemetry_web.config"]
    assert len(warnings) <= 1, warnings
    if warnings:
        assert variable.split("__")[0] in warnings[0] or variable in warnings[0]


@pytest.mark.usefixtures("clean_environ")
def test_bad_value_in_code_is_still_a_config_error() -> None:
    """The environment only warns; the same bad value given in code raises ConfigError."""
    with pytest.raises(ConfigError, match=r"logging\.level: expected one of"):
        Telemetry({"logging": {"level": "loud"}}, set_global=False)
