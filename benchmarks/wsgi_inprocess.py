"""Part A for WSGI apps: each variant called directly with a prebuilt environ, no server.

Every variant lives in a worker process of its own (``python -m benchmarks.wsgi_inprocess
FRAMEWORK VARIANT``): Django can be configured once per process, and OpenTelemetry's
``DjangoInstrumentor`` changes ``settings.MIDDLEWARE`` for the whole process; Flask variants run
the same way, away from the ASGI variants' background threads. The parent drives the workers
round by round (rotating the order, as for ASGI), one at a time, over a line protocol: each
request is a JSON line on the worker's stdin, each answer a JSON line on its stdout.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from benchmarks.apps import BENCH_PATH, Produced
from benchmarks.inprocess import InProcessResult
from benchmarks.load import REPO_ROOT

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

    from benchmarks.wsgi_common import WSGIVariant

# Lets background exporter/log threads catch up between timed batches (as for ASGI).
_PAUSE_S = 0.02
REPLY_TIMEOUT_S = 120.0
MODULES = {"flask": "benchmarks.flask_apps", "django": "benchmarks.django_apps"}


# --- the worker ------------------------------------------------------------------------------


def bench_environ() -> WSGIEnvironment:
    """``GET /api/users/42`` as a WSGI server would pass it; built once, copied per call."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path=BENCH_PATH,
        base_url="http://127.0.0.1:8000",
        headers=[("User-Agent", "telemetry-web-bench/1.0"), ("Accept", "*/*")],
        environ_base={"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000"},
    )
    try:
        environ: WSGIEnvironment = builder.get_environ()
    finally:
        builder.close()
    return environ


class _StartResponse:
    """Discards the response, remembering statuses so a broken app cannot pass as fast."""

    def __init__(self) -> None:
        self.statuses: set[str] = set()

    def __call__(self, status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], Any]:
        self.statuses.add(status)
        return _write

    def check(self, name: str) -> None:
        if self.statuses != {"200 OK"}:
            raise RuntimeError(f"{name}: GET {BENCH_PATH} answered {sorted(self.statuses)}")


def _write(data: bytes) -> None:
    pass


def run_batch(app: WSGIApplication, environ: WSGIEnvironment, n: int, sr: _StartResponse) -> float:
    """Seconds taken by ``n`` sequential requests, each body consumed and closed."""
    start = time.perf_counter()
    for _ in range(n):
        body: Iterable[bytes] = app(dict(environ), sr)
        try:
            for _chunk in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
    return time.perf_counter() - start


Reply = Callable[[dict[str, Any]], None]


def _serve(variant: WSGIVariant, commands: IO[str], reply: Reply) -> None:
    environ = bench_environ()
    for line in commands:
        command = json.loads(line)
        sr = _StartResponse()
        if "warmup" in command:
            run_batch(variant.app, environ, command["warmup"], sr)
            sr.check(variant.name)
            reply({"ok": True})
        elif "batch" in command:
            if variant.drain is not None:
                variant.drain()  # nothing of the warm-up or a past round billed here
            gc.collect()  # don't bill this batch for earlier garbage
            time.sleep(_PAUSE_S)
            # Process CPU (every thread): the loop and the draining of the queues it filled.
            cpu = time.process_time()
            seconds = run_batch(variant.app, environ, command["batch"], sr)
            if variant.drain is not None:
                variant.drain()
            cpu = time.process_time() - cpu
            sr.check(variant.name)
            reply({"seconds": seconds, "cpu": cpu})
        elif "collect" in command:
            produced = variant.collect() if variant.collect is not None else None
            reply({"produced": asdict(produced) if produced is not None else None})
            return


def worker_main(argv: Sequence[str]) -> int:
    framework, name = argv
    # Answers go to the real stdout; anything else printing to stdout goes to stderr instead.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict[str, Any]) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    try:
        variant = importlib.import_module(MODULES[framework]).BUILDERS[name]()
    except Exception as exc:  # an API mismatch, a missing package: the variant is skipped
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 0
    reply({"ready": True})
    try:
        _serve(variant, sys.stdin, reply)
    except Exception as exc:
        reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


# --- the parent ------------------------------------------------------------------------------


class Worker:
    """One variant's worker process."""

    def __init__(self, framework: str, name: str) -> None:
        self.name = name
        # The worker's stderr, for error reports; closed by close().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.wsgi_inprocess", framework, name],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )

    def receive(self) -> dict[str, Any]:
        stdout = self._proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], REPLY_TIMEOUT_S)
        line = stdout.readline() if ready else ""
        if not line:
            self._stop()
            what = "no answer" if ready else f"no answer within {REPLY_TIMEOUT_S:.0f}s"
            raise RuntimeError(f"worker gave {what}: {self._tail()}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise RuntimeError(message["error"])
        return message

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(command) + "\n")
            stdin.flush()
        except OSError:
            pass  # it died: receive() reports why
        return self.receive()

    def _tail(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return text[-1500:] or f"exit status {self._proc.returncode}"

    def _stop(self) -> None:
        """End of input: the worker exits (killed if it does not); idempotent."""
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # a broken pipe while flushing: it is gone already
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def close(self) -> None:
        self._stop()
        self._log.close()


def run_wsgi_inprocess(
    framework: str, names: Sequence[str], rounds: int, iterations: int, warmup: int
) -> tuple[list[InProcessResult], dict[str, str]]:
    """In-process results of the variants that ran, and why the others were skipped."""
    skipped: dict[str, str] = {}
    workers = [Worker(framework, name) for name in names]  # they import and build in parallel
    results = {w.name: InProcessResult(w.name, [], 0) for w in workers}

    def attempt(worker: Worker, command: dict[str, Any] | None) -> dict[str, Any] | None:
        """Send ``command`` (None: wait for readiness); a failure drops the variant."""
        if worker.name in skipped:
            return None
        try:
            return worker.receive() if command is None else worker.ask(command)
        except RuntimeError as exc:
            skipped[worker.name] = str(exc)
            return None

    try:
        for worker in workers:
            attempt(worker, None)
        for worker in workers:
            if attempt(worker, {"warmup": warmup}) is not None:
                results[worker.name].requests += warmup
        for r in range(rounds):
            print(f"bench: {framework} in-process round {r + 1}/{rounds}", file=sys.stderr)
            shift = r % len(workers)
            for worker in [*workers[shift:], *workers[:shift]]:
                answer = attempt(worker, {"batch": iterations})
                if answer is not None:
                    result = results[worker.name]
                    result.round_us.append(answer["seconds"] / iterations * 1e6)
                    result.round_cpu.append(answer["cpu"] / iterations * 10_000)
                    result.requests += iterations
        for worker in workers:
            answer = attempt(worker, {"collect": True})
            if answer is not None and answer["produced"] is not None:
                results[worker.name].produced = Produced(**answer["produced"])
    finally:
        for worker in workers:
            worker.close()
    return [results[n] for n in names if n not in skipped], skipped


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
