"""Reading the JSON log lines a server process or a sink wrote."""

from __future__ import annotations

import json
from typing import Any


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of ``text``, in order (a server's output mixes its own
    plain lines with ours: only lines starting with ``{`` are parsed)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
