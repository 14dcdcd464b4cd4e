"""Part B: each app under a real server process (uvicorn or gunicorn), loaded by wrk over loopback.

The servers of one framework are started together, warmed up, loaded in alternation (so drift
hits every variant), then stopped together; each reports what its app produced as it exits.
"""

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.apps import BENCH_PATH, COUNTS_ENV, Produced

HOST = "127.0.0.1"  # loopback only
REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_THREADS = 1
WRK_CONNECTIONS = 16
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerKind:
    """How to run one app: ``command(target, port)``, the signal that stops it gracefully, and
    the connections wrk keeps open."""

    label: str
    command: Callable[[str, int], list[str]]
    stop_signal: signal.Signals
    connections: int = WRK_CONNECTIONS

    @property
    def short(self) -> str:
        return self.label.split(" (")[0]


def _uvicorn(loop: str | None, http: str | None) -> Callable[[str, int], list[str]]:
    def command(factory: str, port: int) -> list[str]:
        chosen = [*(("--loop", loop) if loop else ()), *(("--http", http) if http else ())]
        return [
            *(sys.executable, "-m", "uvicorn", factory, "--factory"),
            *("--host", HOST, "--port", str(port)),
            *("--no-access-log", "--log-level", "warning"),
            *chosen,
        ]

    return command


def _gunicorn(workers: int) -> Callable[[str, int], list[str]]:
    # Gunicorn's default worker class: sync (one request at a time per worker, a connection per
    # request: wrk reconnects). On the 2-core development machine it served about twice the
    # requests of a gthread worker with 4 threads, whose thread hand-offs hid middleware costs.
    def command(app: str, port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", app, "--bind", f"{HOST}:{port}"),
            *("--workers", str(workers), "--worker-class", "sync", "--log-level", "warning"),
        ]

    return command


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# uvicorn exits gracefully on SIGINT (lifespan shutdown, then atexit hooks). Gunicorn's SIGINT
# is a quick shutdown; SIGTERM lets the worker finish its request and leave through sys.exit,
# so the app's atexit hooks run in the worker.
UVICORN = ServerKind("uvicorn (1 worker)", _uvicorn(None, None), signal.SIGINT)
# What people deploy: uvloop and httptools (uvicorn[standard]), 1 worker, 32 connections.
UVICORN_FAST = ServerKind(
    "uvicorn+uvloop+httptools (1 worker)", _uvicorn("uvloop", "httptools"), signal.SIGINT, 32
)
# uvicorn's pure-Python defaults when uvloop and httptools are absent.
UVICORN_ASYNCIO = ServerKind(
    "uvicorn+asyncio+h11 (1 worker)", _uvicorn("asyncio", "h11"), signal.SIGINT, 32
)
GUNICORN = ServerKind("gunicorn (1 sync worker)", _gunicorn(1), signal.SIGTERM)
GUNICORN_2 = ServerKind("gunicorn (2 sync workers)", _gunicorn(2), signal.SIGTERM)

_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:\s+(.+)")


@dataclass
class LoadResult:
    name: str
    rps: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # startup failures, wrk errors
    requests: int = 0  # served by the server, warm-up and readiness probe included
    produced: Produced | None = None

    @property
    def median_rps(self) -> float | None:
        return statistics.median(self.rps) if self.rps else None


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _free_port(taken: set[int]) -> int:
    """A free loopback port, not one of ``taken`` (servers that may not have bound theirs yet)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-2000:]


class AppServer:
    """One app under one server process on a free loopback port."""

    def __init__(self, kind: ServerKind, target: str, port: int, tmp: Path) -> None:
        self.kind = kind
        self.port = port
        # What the app reported at exit (see benchmarks.apps.COUNTS_ENV); None if it never did.
        self.counts: dict[str, object] | None = None
        self._counts_file = tmp / f"counts-{self.port}.json"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by wait_stopped()
        env = dict(os.environ)
        env[COUNTS_ENV] = str(self._counts_file)
        # The entry points live in the `benchmarks` package at the repo root.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            kind.command(target, self.port),
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        """Wait until the endpoint answers 200; fail fast if the server died."""
        proc, log, name = self._proc, self._log, self.kind.label.split()[0]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", BENCH_PATH)
                status = conn.getresponse().status
                conn.close()
            except OSError:
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"GET {BENCH_PATH} answered {status}:\n{_tail(log)}")
            return
        raise RuntimeError(f"{name} not ready after {START_TIMEOUT_S:.0f}s:\n{_tail(log)}")

    def signal_stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(self.kind.stop_signal)  # graceful: exporters flush at exit

    def wait_stopped(self) -> None:
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        # One file per worker process: the counts add up.
        files = sorted(self._counts_file.parent.glob(self._counts_file.name + ".*"))
        if files:
            self.counts = _merged_counts(files)
        self._log.close()


def _merged_counts(files: list[Path]) -> dict[str, object]:
    requests = 0
    produced: dict[str, float] | None = None
    for path in files:
        counts = json.loads(path.read_text())
        requests += counts["requests"]
        if counts["produced"] is not None:
            before = produced or {}
            produced = {k: before.get(k, 0) + v for k, v in counts["produced"].items()}
    return {"requests": requests, "produced": produced}


def run_wrk(
    port: int, seconds: int, connections: int = WRK_CONNECTIONS
) -> tuple[float, str | None]:
    """One wrk run: (requests/sec, a description of errors or None)."""
    cmd = [
        *(str(wrk_path()), f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s"),
        f"http://{HOST}:{port}{BENCH_PATH}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = _RPS.search(out.stdout)
    if match is None:
        raise RuntimeError(f"could not parse wrk output:\n{out.stdout}{out.stderr}")
    errors = [m.group(0) for rx in (_NON_2XX, _SOCKET_ERRORS) if (m := rx.search(out.stdout))]
    return float(match.group(1)), "; ".join(errors) or None


def run_load(
    targets: Mapping[str, str],
    seconds: int,
    rounds: int,
    warmup_seconds: int,
    kind: ServerKind = UVICORN,
    label: str = "",
) -> dict[str, LoadResult]:
    """Start every server, warm each up, then alternate wrk runs between them."""
    results = {name: LoadResult(name) for name in targets}
    servers: dict[str, AppServer] = {}
    ready: dict[str, AppServer] = {}
    ports: set[int] = set()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, target in targets.items():  # they import and build in parallel
                servers[name] = AppServer(kind, target, _free_port(ports), Path(tmp))
            for name, server in servers.items():
                try:
                    server.wait_ready()
                except RuntimeError as exc:
                    results[name].problems.append(f"server did not start: {exc}")
                else:
                    ready[name] = server
            for name, server in ready.items():
                if warmup_seconds > 0:
                    _measure(results[name], server.port, warmup_seconds, "warm-up", kind)
            for r in range(rounds):
                print(f"bench: {label}wrk round {r + 1}/{rounds}", file=sys.stderr)
                for name, server in ready.items():
                    rps = _measure(results[name], server.port, seconds, f"round {r + 1}", kind)
                    if rps is not None:
                        results[name].rps.append(rps)
        finally:
            for server in servers.values():
                server.signal_stop()
            for server in servers.values():
                server.wait_stopped()
    # The servers have exited now, so their counts are final.
    for name, server in ready.items():
        _read_counts(results[name], server)
    return results


def _measure(
    result: LoadResult, port: int, seconds: int, label: str, kind: ServerKind = UVICORN
) -> float | None:
    """One wrk run; a failure is recorded against the variant instead of ending the benchmark."""
    try:
        rps, errors = run_wrk(port, seconds, kind.connections)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        result.problems.append(f"{label}: wrk failed: {exc}")
        return None
    if errors:
        result.problems.append(f"{label}: {errors}")
    return rps


def _read_counts(result: LoadResult, server: AppServer) -> None:
    if server.counts is None:
        result.problems.append("no counts reported at exit")
        return
    requests = server.counts["requests"]
    produced = server.counts["produced"]
    result.requests = requests if isinstance(requests, int) else 0
    if isinstance(produced, dict):
        result.produced = Produced(**produced)
