"""The resource every span carries: service name, version and environment merged with
``resource_attributes`` and ``OTEL_RESOURCE_ATTRIBUTES``, and the process that exported it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry_web import Telemetry

from .._net import free_port
from .conftest import Capture


def resource_of(capture: Capture, config: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    telemetry = capture(config, **kwargs).telemetry
    assert telemetry.tracer_provider is not None
    return dict(telemetry.tracer_provider.resource.attributes)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* or TELEMETRY_* variable of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith(("OTEL_", "TELEMETRY_")):
            monkeypatch.delenv(name)


def test_service_version_and_environment() -> None:
    """service, service_version and environment become service.name, service.version and
    deployment.environment (and .name), next to the SDK's and our own identification."""
    telemetry = Telemetry(
        {"service": "orders", "service_version": "1.4.2", "environment": "prod",
         "logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
        use_env=False, set_global=False,
    )  # fmt: skip
    try:
        assert telemetry.tracer_provider is not None
        attributes = dict(telemetry.tracer_provider.resource.attributes)
    finally:
        telemetry.shutdown()
    assert attributes["service.name"] == "orders"
    assert attributes["service.version"] == "1.4.2"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["deployment.environment.name"] == "prod"
    assert attributes["telemetry.sdk.language"] == "python"
    assert attributes["telemetry.sdk.name"] == "opentelemetry"
    assert attributes["telemetry.distro.name"] == "telemetry-web"


def test_resource_attributes_are_merged(capture: Capture) -> None:
    """resource_attributes add their keys; service and environment, when set, win over the
    same keys there."""
    attributes = resource_of(
        capture,
        {"environment": "prod", "tracing": {"resource_attributes": {
            "team": "payments", "service.name": "other", "deployment.environment": "staging",
        }}},
        service="orders",
    )  # fmt: skip
    assert attributes["team"] == "payments"
    assert attributes["service.name"] == "orders"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["deployment.environment.name"] == "prod"
    assert "service.version" not in attributes


def test_resource_attributes_fill_in_what_is_left_at_its_default() -> None:
    """With service and environment left at their defaults, resource_attributes name them;
    service.version there wins over service_version."""
    telemetry = Telemetry(
        {"service_version": "1.0", "logging": {"sinks": {"console": False}},
         "store": {"enabled": False},
         "tracing": {"resource_attributes": {"service.name": "billing",
                                             "deployment.environment.name": "qa",
                                             "service.version": "2.0"}}},
        use_env=False, set_global=False,
    )  # fmt: skip
    try:
        assert telemetry.tracer_provider is not None
        attributes = dict(telemetry.tracer_provider.resource.attributes)
    finally:
        telemetry.shutdown()
    assert attributes["service.name"] == "billing"
    assert attributes["deployment.environment"] == "qa"
    assert attributes["deployment.environment.name"] == "qa"
    assert attributes["service.version"] == "2.0"


def test_otel_resource_attributes_from_the_environment(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_RESOURCE_ATTRIBUTES is merged in; OTEL_SERVICE_NAME wins over its service.name,
    in the resource as in the metrics' service label."""
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "team=payments,service.name=from-attributes,service.version=9.1,"
        "deployment.environment=canary",
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")
    captured = capture({"service_version": "1.0"}, use_env=True)
    provider = captured.telemetry.tracer_provider
    assert provider is not None
    attributes = dict(provider.resource.attributes)
    assert attributes["team"] == "payments"
    assert attributes["service.name"] == "from-service-name"
    assert captured.telemetry.settings.service == "from-service-name"
    assert attributes["service.version"] == "9.1"
    assert attributes["deployment.environment"] == "canary"
    assert attributes["deployment.environment.name"] == "canary"


def test_telemetry_service_version_variable(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELEMETRY_SERVICE_VERSION sets service_version like any other key."""
    monkeypatch.setenv("TELEMETRY_SERVICE_VERSION", "3.2.1")
    assert resource_of(capture, {}, use_env=True)["service.version"] == "3.2.1"


def test_the_environment_is_not_read_with_use_env_false(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """use_env=False keeps OTEL_RESOURCE_ATTRIBUTES out of the resource too (the SDK's
    Resource.create would have read it)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=leaked,service.name=leaked")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "leaked")
    attributes = resource_of(capture, {}, use_env=False)
    assert "team" not in attributes
    assert attributes["service.name"] == "test"


def test_spans_carry_the_resource(capture: Capture) -> None:
    """Spans from the tracer API carry the merged resource."""
    captured = capture({"service_version": "5", "tracing": {"resource_attributes": {"a": "b"}}})
    captured.telemetry.get_tracer("orders").start_span("x").end()
    (span,) = captured.spans()
    assert span.resource.attributes["service.version"] == "5"
    assert span.resource.attributes["a"] == "b"
    assert span.resource.attributes["service.name"] == "test"


# --- which process: process.pid and service.instance.id (issue 12, item 6) ------------------------


def test_resource_names_the_process(capture: Capture) -> None:
    """Spans carry process.pid and a UUID service.instance.id, the same for every provider the
    process builds (a reconfiguration keeps it)."""
    first = resource_of(capture, {})
    second = resource_of(capture, {"service": "other"})
    assert first["process.pid"] == os.getpid()
    assert uuid.UUID(str(first["service.instance.id"])).version == 4
    assert second["service.instance.id"] == first["service.instance.id"]


def test_configured_instance_id_is_kept(capture: Capture) -> None:
    """A service.instance.id given in resource_attributes (or OTEL_RESOURCE_ATTRIBUTES) wins."""
    attributes = resource_of(
        capture, {"tracing": {"resource_attributes": {"service.instance.id": "orders-7"}}}
    )
    assert attributes["service.instance.id"] == "orders-7"
    assert attributes["process.pid"] == os.getpid()


FORK_SCRIPT = """
import json, os, sys
from telemetry_web import Telemetry
from opentelemetry.sdk.trace.export import SpanExportResult, SpanExporter

class Lines(SpanExporter):
    def export(self, spans):
        with open(sys.argv[1], "a") as out:
            for s in spans:
                out.write(json.dumps({"writer": os.getpid(), "name": s.name,
                                      "resource": dict(s.resource.attributes)}) + "\\n")
        return SpanExportResult.SUCCESS

telemetry = Telemetry(service="fork", use_env=False, span_exporters=[Lines()],
                      config={"logging": {"sinks": {"console": False}},
                              "store": {"enabled": False}})
tracer = telemetry.get_tracer("fork-test")
tracer.start_span("parent").end()
telemetry.tracer_provider.force_flush()
children = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        tracer.start_span(f"child-{n}").end()
        with tracer.start_span(f"child-{n}-again"):
            pass
        telemetry.shutdown(timeout=5)
        os._exit(0)
    children.append(pid)
for pid in children:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
telemetry.shutdown(timeout=5)
print(json.dumps([os.getpid(), children]))
"""


def test_forked_children_name_their_own_process(tmp_path: Path) -> None:
    """A worker forked after the Telemetry was built exports spans with its own process.pid and
    service.instance.id, not its parent's (a fresh interpreter forks twice)."""
    lines = tmp_path / "spans.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(lines)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    parent, children = json.loads(result.stdout.strip().splitlines()[-1])
    spans = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(spans) == 5
    for span in spans:
        assert span["resource"]["process.pid"] == span["writer"], span
    by_pid = {s["writer"]: s["resource"]["service.instance.id"] for s in spans}
    assert set(by_pid) == {parent, *children}
    assert len(set(by_pid.values())) == 3  # one instance id per process


GUNICORN_APP = """
import os
from telemetry_web import Telemetry
from telemetry_web.wsgi import TelemetryWSGIMiddleware

telemetry = Telemetry(service="preload", config={
    "logging": {"sinks": {"console": False}},
    "store": {"path": os.environ["STORE_PATH"]},
    "tracing": {"batch": {"schedule_delay": "100ms"}},
})

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

application = TelemetryWSGIMiddleware(app, telemetry=telemetry)
"""


@pytest.mark.server
def test_gunicorn_preload_workers_each_name_their_own_process(tmp_path: Path) -> None:
    """Under gunicorn --preload -w 2 (the Telemetry is built in the master, then forked), the
    spans in the local store carry the pid of the worker that served them and one
    service.instance.id per worker."""
    (tmp_path / "app.py").write_text(GUNICORN_APP)
    store = tmp_path / "telemetry.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    env.update(PYTHONPATH=str(tmp_path), STORE_PATH=str(store))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2",
               "-b", f"127.0.0.1:{port}", "app:application"]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    served: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        while len(served) < 2 or sum(served.values()) < 20:
            assert time.monotonic() < deadline, log.read_text()
            assert server.poll() is None, log.read_text()
            try:
                with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
                    pid = int(client.get(f"http://127.0.0.1:{port}/", timeout=5).text)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            served[pid] = served.get(pid, 0) + 1
    finally:
        server.send_signal(signal.SIGTERM)  # workers flush their spans to the store on exit
        server.wait(timeout=30)
    assert server.pid not in served
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT resource FROM spans").fetchall()
    resources = [json.loads(row[0]) for row in rows]
    assert len(resources) == sum(served.values()), log.read_text()
    counted: dict[int, int] = {}
    for resource in resources:
        counted[resource["process.pid"]] = counted.get(resource["process.pid"], 0) + 1
    assert counted == served
    instance_ids = {(r["process.pid"], r["service.instance.id"]) for r in resources}
    assert len(instance_ids) == 2
    assert len({i for _, i in instance_ids}) == 2
