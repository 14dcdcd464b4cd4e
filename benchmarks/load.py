"""Part B: each app under a real uvicorn process, loaded by wrk over loopback."""

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.apps import BENCH_PATH, COUNTS_ENV, Produced

HOST = "127.0.0.1"  # loopback only
REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_THREADS = 1
WRK_CONNECTIONS = 16
START_TIMEOUT_S = 20.0

_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:\s+(.+)")


@dataclass
class LoadResult:
    name: str
    rps: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # startup failures, wrk errors
    requests: int = 0  # served by uvicorn, warm-up and readiness probe included
    produced: Produced | None = None

    @property
    def median_rps(self) -> float | None:
        return statistics.median(self.rps) if self.rps else None


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-2000:]


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    """Wait until the port accepts and the endpoint answers 200; fail fast if uvicorn died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{_tail(log)}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", BENCH_PATH)
            status = conn.getresponse().status
            conn.close()
        except OSError:
            time.sleep(0.1)
            continue
        if status != 200:
            raise RuntimeError(f"GET {BENCH_PATH} answered {status}:\n{_tail(log)}")
        return
    raise RuntimeError(f"uvicorn not ready after {START_TIMEOUT_S:.0f}s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # graceful: lets exporters flush at exit
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Server:
    port: int
    # What the app reported at exit (see benchmarks.apps.COUNTS_ENV); None if it never did.
    counts: dict[str, object] | None = None


@contextlib.contextmanager
def uvicorn_server(factory: str) -> Iterator[Server]:
    """Run ``factory`` under one uvicorn worker on a free loopback port."""
    server = Server(_free_port())
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        counts_file = Path(tmp) / "counts.json"
        env = dict(os.environ)
        env[COUNTS_ENV] = str(counts_file)
        # The factories live in the `benchmarks` package at the repo root.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        cmd = [
            *(sys.executable, "-m", "uvicorn", factory, "--factory"),
            *("--host", HOST, "--port", str(server.port)),
            *("--no-access-log", "--log-level", "warning"),
        ]
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(proc, server.port, log)
            yield server
        finally:
            _stop(proc)
            if counts_file.exists():
                server.counts = json.loads(counts_file.read_text())


def run_wrk(port: int, seconds: int) -> tuple[float, str | None]:
    """One wrk run: (requests/sec, a description of errors or None)."""
    cmd = [
        *(str(wrk_path()), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s"),
        f"http://{HOST}:{port}{BENCH_PATH}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = _RPS.search(out.stdout)
    if match is None:
        raise RuntimeError(f"could not parse wrk output:\n{out.stdout}{out.stderr}")
    errors = [m.group(0) for rx in (_NON_2XX, _SOCKET_ERRORS) if (m := rx.search(out.stdout))]
    return float(match.group(1)), "; ".join(errors) or None


def run_load(
    factories: Mapping[str, str], seconds: int, rounds: int, warmup_seconds: int
) -> dict[str, LoadResult]:
    """Start every server once, warm each up, then alternate wrk runs between them."""
    results = {name: LoadResult(name) for name in factories}
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        for name, factory in factories.items():
            try:
                servers[name] = stack.enter_context(uvicorn_server(factory))
            except RuntimeError as exc:
                results[name].problems.append(f"server did not start: {exc}")
        for name, server in servers.items():
            _measure(results[name], server, warmup_seconds, "warm-up")
        for r in range(rounds):
            print(f"bench: wrk round {r + 1}/{rounds}", file=sys.stderr)
            for name, server in servers.items():
                rps = _measure(results[name], server, seconds, f"round {r + 1}")
                if rps is not None:
                    results[name].rps.append(rps)
    # The servers have exited now, so their counts are final.
    for name, server in servers.items():
        _read_counts(results[name], server)
    return results


def _measure(result: LoadResult, server: Server, seconds: int, label: str) -> float | None:
    """One wrk run; a failure is recorded against the variant instead of ending the benchmark."""
    try:
        rps, errors = run_wrk(server.port, seconds)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        result.problems.append(f"{label}: wrk failed: {exc}")
        return None
    if errors:
        result.problems.append(f"{label}: {errors}")
    return rps


def _read_counts(result: LoadResult, server: Server) -> None:
    if server.counts is None:
        result.problems.append("no counts reported at exit")
        return
    requests = server.counts["requests"]
    produced = server.counts["produced"]
    result.requests = requests if isinstance(requests, int) else 0
    if isinstance(produced, dict):
        result.produced = Produced(**produced)
