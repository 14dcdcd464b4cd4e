"""The async counterpart of ``_recording.count``, kept out of the compiled modules (mypyc
compiles no async generators)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._recording import Recording

_perf = time.perf_counter


async def count_async(content: AsyncIterator[bytes], recording: Recording) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            recording.response_size += len(chunk)
            yield chunk
    except Exception as exc:
        recording.stream_error = exc
        raise
    finally:
        recording.ended = _perf()
        recording.active.detach()
