"""The file sink: JSON lines, size rotation, max_files, gzip, and several processes on one file."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from telemetry_web.errors import ConfigError
from telemetry_web.logging import FileSink

from .conftest import ENVIRONMENT, SERVICE, MakeTelemetry

ROOT = Path(__file__).resolve().parents[2]


def rotated_files(path: Path) -> list[Path]:
    """The rotated files next to ``path`` (plain or gzip), oldest first."""
    return sorted(
        p
        for p in path.parent.iterdir()
        if p.name.startswith(path.name + ".") and p.name[-5:] != ".lock"
    )


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as source:
        return source.read().splitlines()


def all_lines(path: Path) -> list[str]:
    """Every line of the rotated files (oldest first), then of the current one."""
    lines: list[str] = []
    for rotated in rotated_files(path):
        lines.extend(read_lines(rotated))
    if path.exists():
        lines.extend(read_lines(path))
    return lines


def batch(start: int, count: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"event": "line", "n": n, "pad": "x" * pad} for n in range(start, start + count)]


def test_configured_file_sink_writes_json_lines(
    make_telemetry: MakeTelemetry, tmp_path: Path
) -> None:
    """Each event is one JSON object per line, with the pipeline's fields, redacted."""
    path = tmp_path / "logs" / "app.log"  # the directory is created
    tel = make_telemetry(logging={"sinks": {"file": {"path": str(path)}}})
    log = tel.get_logger("api")
    log.info("Processing request", method="GET", user_id=42, token="t-1")
    log.warning("Slow", duration_ms=812.5)
    tel.flush()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert {k: first[k] for k in ("level", "event", "logger", "service", "environment")} == {
        "level": "info",
        "event": "Processing request",
        "logger": "api",
        "service": SERVICE,
        "environment": ENVIRONMENT,
    }
    assert (first["method"], first["user_id"], first["token"]) == ("GET", 42, "REDACTED")
    assert (second["level"], second["duration_ms"]) == ("warning", 812.5)
    assert first["timestamp"].endswith("Z")


def test_rotation_by_size_keeps_max_files(tmp_path: Path) -> None:
    """Past ``max_size`` the file is rotated; only the newest ``max_files`` rotated files stay."""
    path = tmp_path / "app.log"
    sink = FileSink(path, max_size=2_000, max_files=3, compress=False)
    try:
        for start in range(0, 200, 10):  # 20 batches of ~1,000 bytes
            sink.write(batch(start, 10, pad=60))
    finally:
        sink.close()
    rotated = rotated_files(path)
    assert len(rotated) == 3
    assert all(p.stat().st_size <= 2_000 for p in [*rotated, path])
    numbers = [json.loads(line)["n"] for line in all_lines(path)]
    assert numbers == list(range(numbers[0], 200))  # the newest lines, in order, none missing
    assert numbers[0] > 0  # the oldest files were deleted


def test_rotated_files_are_gzip_compressed(tmp_path: Path) -> None:
    """With ``compress``, rotated files become ``.gz`` and hold the same lines."""
    path = tmp_path / "app.log"
    sink = FileSink(path, max_size=1_500, max_files=100, compress=True)
    try:
        for start in range(0, 100, 10):
            sink.write(batch(start, 10, pad=50))
    finally:
        sink.close()  # waits for the compressions
    rotated = rotated_files(path)
    assert rotated
    assert all(p.suffix == ".gz" for p in rotated), rotated
    assert not list(tmp_path.glob("*.tmp"))
    assert [json.loads(line)["n"] for line in all_lines(path)] == list(range(100))


def test_a_second_writer_follows_a_rotation(tmp_path: Path) -> None:
    """A sink whose file was rotated by another writer reopens the new file: nothing is written
    to the rotated one after the rotation, and no line is lost or repeated."""
    path = tmp_path / "app.log"
    first = FileSink(path, max_size=1_000, max_files=100, compress=False)
    second = FileSink(path, max_size=1_000, max_files=100, compress=False)
    try:
        for start in range(0, 120, 6):
            (first if start % 12 else second).write(batch(start, 6, pad=40))
    finally:
        first.close()
        second.close()
    rotated = rotated_files(path)
    assert len(rotated) > 3
    numbers = [json.loads(line)["n"] for line in all_lines(path)]
    assert numbers == list(range(120))
    assert all(p.stat().st_size <= 1_000 for p in [*rotated, path])


def test_unwritable_path_is_a_config_error(make_telemetry: MakeTelemetry, tmp_path: Path) -> None:
    """A path that cannot be opened is reported at configure time with its key."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(ConfigError) as info:
        make_telemetry(logging={"sinks": {"file": {"path": str(blocker / "app.log")}}})
    (problem,) = info.value.problems
    assert problem.startswith("logging.sinks.file.path: cannot write to")


# Python 3.12+ warns about fork() in a threaded process: forking one is what is tested here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_reopens_its_descriptors(tmp_path: Path) -> None:
    """A child forked with the sink open writes through its own descriptors and lock."""
    path = tmp_path / "app.log"
    sink = FileSink(path, max_size=10_000, max_files=10, compress=False)
    sink.write(batch(0, 5))
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            sink.write(batch(5, 5))
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write(batch(10, 5))
    sink.close()
    assert sorted(json.loads(line)["n"] for line in all_lines(path)) == list(range(15))


WORKERS = 4
LINES = 50_000
MAX_SIZE = 256 * 1024


def test_four_processes_fifty_thousand_lines_through_rotation(tmp_path: Path) -> None:
    """4 processes each log 50,000 numbered lines to one file rotated every 256 KiB (gzip):
    every line of every worker is found exactly once across the files, none is torn, none
    dropped, and no file grew past max_size."""
    path = tmp_path / "app.log"
    start = tmp_path / "start"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    env.pop("TELEMETRY_CONFIG", None)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.logging._writer",
                str(path),
                str(w),
                str(LINES),
                str(MAX_SIZE),
                str(start),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    deadline = time.monotonic() + 60  # every worker has imported and built its Telemetry
    while len(list(tmp_path.glob("start.ready*"))) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.01)
    start.touch()
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert json.loads(out) == {}, f"events dropped: {out}"
        assert "Log shipping failed" not in err, err

    rotated = rotated_files(path)
    assert len(rotated) >= 50  # ~28 MB of lines: many rotations raced between the workers
    assert all(p.suffix == ".gz" for p in rotated), [p.name for p in rotated if p.suffix != ".gz"]
    assert not list(tmp_path.glob("*.tmp"))
    seen: Counter[tuple[int, int]] = Counter()
    for file in [*rotated, path]:
        lines = read_lines(file)
        assert sum(len(line) + 1 for line in lines) <= MAX_SIZE, file.name
        for line in lines:
            event = json.loads(line)  # a torn or interleaved line would not parse
            seen[(event["w"], event["n"])] += 1
    expected = {(w, n) for w in range(WORKERS) for n in range(LINES)}
    assert set(seen) == expected
    assert max(seen.values()) == 1
    assert sum(seen.values()) == WORKERS * LINES


def test_unrenderable_values(make_telemetry: MakeTelemetry, tmp_path: Path) -> None:
    """Values JSON cannot hold are written as text; a cyclic one turns its event into a line
    naming the problem, and the other lines of the batch are written as usual."""
    path = tmp_path / "app.log"
    tel = make_telemetry(logging={"sinks": {"file": {"path": str(path)}}})
    log = tel.get_logger("api")
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    log.info("odd values", tags=frozenset({"a"}), when=Path("/x"))
    log.info("cyclic", payload=cyclic)
    log.info("after")
    tel.flush()
    odd, broken, after = (json.loads(line) for line in path.read_text().splitlines())
    assert (odd["tags"], odd["when"]) == ("frozenset({'a'})", "/x")
    assert broken["event"] == "cyclic"
    assert broken["render_error"].startswith("RecursionError")
    assert after["event"] == "after"
