"""`make demo`: serve the sample app with uvicorn, send traffic, show what telemetry-web made."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"demo: the sample app did not start on {host}:{port}")


def request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=body)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def show_cli(store: Path, env: dict[str, str]) -> None:
    """What the `telemetry` CLI reads back from the local store."""
    cli = [sys.executable, "-m", "telemetry_web.cli"]

    def run(*words: str) -> str:
        print(f"\n== telemetry {' '.join(words)}")
        done = subprocess.run([*cli, *words, "--store", str(store)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        print(done.stdout.rstrip() or done.stderr.rstrip())
        return done.stdout

    found = json.loads(subprocess.run(
        [*cli, "traces", "search", "--service", "sample-app", "--status", "error", "--json",
         "--store", str(store)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    ).stdout or "[]")  # fmt: skip
    run("traces", "search", "--service", "sample-app", "--limit", "5")
    if found:
        trace_id = found[0].get("trace_id", "")
        run("traces", "show", trace_id)
    report = json.loads(subprocess.run(
        [*cli, "traces", "search", "--service", "sample-app", "--route", "/api/report",
         "--limit", "1", "--json", "--store", str(store)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    ).stdout or "[]")  # fmt: skip
    if report:  # the SQL (and Redis) spans the launcher added, under the request span
        run("traces", "show", report[0].get("trace_id", ""))
    run("traces", "stats", "--service", "sample-app")
    run("logs", "tail", "--service", "sample-app", "--level", "warning")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    base = f"http://{args.host}:{args.port}"
    # The server writes here while we run; read back at the end.
    log_file = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    store = Path(tempfile.mkdtemp(prefix="telemetry-demo-")) / "telemetry.db"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
           "TELEMETRY_STORE__PATH": str(store), "OTEL_SERVICE_NAME": "sample-app"}  # fmt: skip
    # The unchanged app under the zero-code launcher; everything lands in the local store.
    server = subprocess.Popen(
        [sys.executable, "-m", "telemetry_web.cli", "run", "--",
         sys.executable, "-m", "uvicorn", "sample_apps.starlette_app:app",
         "--host", args.host, "--port", str(args.port), "--no-access-log"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(args.host, args.port)
        print(f"== sample app on {base}: sending traffic")
        traffic = [("GET", "/api/users"), ("GET", "/api/users/1"), ("GET", "/api/users/2"),
                   ("GET", "/api/users/99"), ("GET", "/api/stream"), ("GET", "/api/fail"),
                   ("GET", "/no/such/path"), ("POST", "/api/orders"), ("GET", "/api/report"),
                   ("GET", "/api/slow")]  # fmt: skip
        for round_ in range(3):
            for method, path in traffic:
                body = (
                    json.dumps({"user_id": 1, "items": [1, 2]}).encode()
                    if method == "POST"
                    else None
                )
                status, _ = request(base + path, method, body)
                if round_ == 0:
                    print(f"   {method:4} {path:18} -> {status}")
            time.sleep(0.05)
        time.sleep(0.5)  # the log writer thread runs off the request path

        _, metrics = request(base + "/metrics")
        print("\n== /metrics (excerpt: the request counter and in-progress gauge)")
        for line in metrics.splitlines():
            if line.startswith(
                (
                    "http_requests_total",
                    "# HELP http_requests_total",
                    "# TYPE http_requests_total",
                    "http_requests_in_progress",
                )
            ):
                print("   " + line)
        print("\n== telemetry metrics list --url " + base + "/metrics")
        listed = subprocess.run(
            [sys.executable, "-m", "telemetry_web.cli", "metrics", "list",
             "--url", base + "/metrics"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        print(listed.stdout.rstrip() or listed.stderr.rstrip())
        print("\n== /ready")
        status, ready = request(base + "/ready")
        print(f"   {status} {ready}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    show_cli(store, env)
    log_file.seek(0)
    lines = [line for line in log_file.read().splitlines() if line.startswith("{")]
    print("\n== JSON log lines (a request line, an application line, a stdlib line, an error)")
    shown: set[str] = set()
    for line in lines:
        event = json.loads(line)
        kind = f"{event.get('logger')}:{event.get('level')}"
        if kind not in shown:
            shown.add(kind)
            print("   " + line[:600])
    print("\n== the same store in a browser (docs/ui.png shows the trace page)")
    print(f"   telemetry ui --store {store}   # then open http://127.0.0.1:8321/")
    print(f"   screenshot: {ROOT / 'docs' / 'ui.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
