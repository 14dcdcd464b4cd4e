"""Prometheus Remote-Write 1.0 (``metrics.exporters: - type: prometheus``).

Every ``interval`` the whole registry (in multiprocess mode the merged values of every worker,
pushed by one process) is sent as one snappy-compressed protobuf ``prometheus.WriteRequest``:
one ``TimeSeries`` per sample, its name in ``__name__`` (counters with ``_total``, histograms
as the classic ``_bucket{le}``/``_sum``/``_count``), the service's constant labels (``service``,
``environment``, ``labels``) on every series that lacks them, one timestamp in milliseconds.

- **Protobuf by hand**: the four messages of the spec (``WriteRequest``, ``TimeSeries``,
  ``Label``, ``Sample``) are a few lines of wire format; writing them here keeps ``protobuf``
  out of the dependencies. tests/metrics/test_remote_write.py decodes them with the
  ``protobuf`` runtime from descriptors built apart, and a real Prometheus stores them.
- **Snappy**: with ``cramjam`` installed (the ``remote-write`` extra) the block format is
  compressed by it; without, it is written as uncompressed literal blocks, which the snappy
  block format allows and every decoder reads (Prometheus's Go decoder included), at no CPU
  cost and with no dependency, only with bigger requests (a registry of a few hundred series
  is tens of KB).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ... import __version__
from ._http import post, where
from ._push import PushOutput, Snapshot

__all__ = ["RemoteWriteOutput", "encode_write_request", "snappy_block"]

Series = tuple[Sequence[tuple[str, str]], float, int]  # sorted labels, value, timestamp ms


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is ``(number << 3) | 2``."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def encode_write_request(series: Iterable[Series]) -> bytes:
    """``prometheus.WriteRequest{timeseries}``: Label{1: name, 2: value}, Sample{1: double
    value, 2: int64 timestamp}, TimeSeries{1: labels, 2: samples}, WriteRequest{1: timeseries}."""
    out = bytearray()
    for labels, value, timestamp in series:
        body = bytearray()
        for name, text in labels:
            body += _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, text.encode()))
        sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(max(0, timestamp))
        body += _field(0x12, sample)
        out += _field(0x0A, bytes(body))
    return bytes(out)


def _literal_block(data: bytes) -> bytes:
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start : start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes((60 << 2, n))
        else:
            out.append(61 << 2)
            out += n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def snappy_block(data: bytes, *, use_cramjam: bool = True) -> bytes:
    """``data`` in the snappy block format (not the framed one), as Remote-Write wants it."""
    if use_cramjam:
        try:
            import cramjam
        except ImportError:
            pass
        else:
            return bytes(cramjam.snappy.compress_raw(data))
    return _literal_block(data)


def write_request_series(snapshot: Snapshot, constant: Mapping[str, str]) -> list[Series]:
    """One series per sample of ``snapshot``; a label set seen twice is sent once."""
    result: list[Series] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for _family, sample in snapshot.series():
        labels = {**constant, **sample.labels, "__name__": sample.name}
        key = tuple(sorted(labels.items()))
        if key in seen:
            continue
        seen.add(key)
        stamp = snapshot.timestamp_ms
        if sample.timestamp is not None:
            stamp = int(float(sample.timestamp) * 1000)
        result.append((key, float(sample.value), stamp))
    return result


class RemoteWriteOutput(PushOutput):
    """Pushes the merged registry to a Prometheus Remote-Write 1.0 receiver."""

    kind = "prometheus"
    merged = True

    def __init__(
        self,
        endpoint: str,
        *,
        constant_labels: Mapping[str, str] = {},
        headers: Mapping[str, str] = {},
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        **push: Any,
    ) -> None:
        super().__init__(where=where(endpoint), **push)
        self._url = endpoint  # may carry credentials: messages show `where`
        self._constant = dict(constant_labels)
        self._headers = {"User-Agent": f"telemetry-web/{__version__}", **headers}
        if basic_auth is not None:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        elif bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._headers.update({
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        })  # fmt: skip

    def export(self, snapshot: Snapshot, timeout: float) -> None:
        series = write_request_series(snapshot, self._constant)
        body = snappy_block(encode_write_request(series))
        post(self._url, body, self._headers, timeout)
