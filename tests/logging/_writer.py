"""One worker of the multi-process rotation test: ``python -m tests.logging._writer``.

Arguments: log path, worker number, line count, max_size in bytes, start-signal path (it
writes `<start>.ready<worker>` when ready, and waits for `<start>`). Logs
``count`` numbered lines through a Telemetry with the file sink, shuts down (which delivers
everything and finishes compression), then prints its drop counts as JSON on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time

from telemetry_web import Telemetry


def main() -> None:
    path, worker, count, max_size, start = sys.argv[1:6]
    telemetry = Telemetry(
        {
            "service": "rotation",
            "logging": {
                "request_log": False,
                # Room for every line at once (by count and by size): this test is about
                # rotation by several processes, not about a full queue.
                "queue_size": int(count) + 1,
                "queue_bytes": (int(count) + 1) * 4096,
                "sinks": {
                    "console": False,
                    "file": {
                        "path": path,
                        "rotation": {
                            "max_size": int(max_size),
                            "max_files": 10_000,
                            "compress": True,
                        },
                    },
                },
            },
            # No local store: it would be the working directory's (the repository's).
            "store": {"enabled": False},
        },
        use_env=False,
        set_global=False,
        capture_stdlib_logging=False,
    )
    log = telemetry.get_logger("writer").bind(w=int(worker))
    open(f"{start}.ready{worker}", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(start) and time.monotonic() < deadline:
        time.sleep(0.005)  # every worker starts writing at the same moment
    for n in range(int(count)):
        log.info("line", n=n)
    telemetry.shutdown(timeout=60)
    dropped = {
        f"{s.labels['sink']}/{s.labels['reason']}": s.value
        for metric in telemetry.registry.collect()
        if metric.name == "telemetry_log_events_dropped"
        for s in metric.samples
        if s.name.endswith("_total") and s.value
    }
    print(json.dumps(dropped))


if __name__ == "__main__":
    main()
