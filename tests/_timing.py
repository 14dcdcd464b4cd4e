"""One rule for "a failing backend never slows requests", shared by the output and sink tests.

A request that waited on a hung, refused or unresolvable backend would wait for its timeout
(hundreds of milliseconds) every time the output flushes: that shows in the 95th percentile.
A single pause of the whole process (garbage collection, a loaded CI machine) does not make the
request path slow, so the worst request only gets a generous bound.
"""

from __future__ import annotations

from collections.abc import Sequence


def assert_not_slowed(
    durations: Sequence[float], *, typical: float = 0.02, worst: float = 2.0
) -> None:
    """The 95th percentile of ``durations`` (seconds) under ``typical``, every one under
    ``worst``."""
    ordered = sorted(durations)
    assert ordered, "no request was timed"
    p95 = ordered[int(len(ordered) * 0.95) - 1 if len(ordered) > 1 else 0]
    assert p95 < typical, f"95th percentile {p95 * 1000:.1f} ms (of {len(ordered)} requests)"
    assert ordered[-1] < worst, f"slowest request {ordered[-1] * 1000:.0f} ms"
