"""The fault suite (issue 12, item 7): every span exporter and log sink against a backend that
is down, hangs, is slow, throttles (429 + Retry-After), fails (5xx) or answers garbage, a file
sink and store on a full disk (a 256/512 KiB tmpfs mounted per test: needs root, fails under
CI=true), a store locked or corrupted by another process, and a store writer SIGKILLed
mid-write. Run it with ``.venv/bin/pytest tests/faults`` (under a minute)."""
