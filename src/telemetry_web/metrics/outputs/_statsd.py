"""StatsD and DogStatsD over UDP (``metrics.collectors.statsd``).

Nothing is sent per request: every ``flush_interval`` the registry is read (a :class:`PushOutput`
with ``merged = False``, so every worker process sends) and turned into StatsD lines, packed
several to a UDP packet of at most ``max_packet_size`` bytes (a line is never split).

- **Counters** are sent as ``|c`` deltas: the increase since the value last sent, only when
  it changed. What was sent is kept per series (pruned to the series the registry still has),
  shared by every output of one registry so that reconfiguring never sends a total twice.
  A failed send keeps the increase for the next one; a value lower than the one sent (a reset)
  is sent whole.
- **Histograms** (and summaries) become counters of the same kind: ``<name>_count``,
  ``<name>_sum`` and one ``<name>_bucket`` per bucket, labelled ``le`` (cumulative, as in
  Prometheus). A StatsD timer would need every observation; bucket deltas give exact counts at
  the daemon, and the fraction under a threshold is ``bucket{le} / count`` there as here.
- **Gauges** are sent as absolute ``|g`` values at every flush (so a daemon that deletes idle
  stats keeps them). StatsD reads ``-5|g`` as "subtract 5", so a negative value is sent as
  ``name:0|g`` then ``name:-5|g`` in the same packet. NaN and infinite values are not sent.
  Under several workers the gauges are read from the merged view every worker shares (what
  ``/metrics`` shows: ``livesum`` summed, ``liveall`` per ``pid``), so every worker sends the
  same value and the daemon keeps it; counters and histograms come from the worker's own
  values, so the daemon's sums are the service's totals.
- **Names**: ``<prefix>.<sample name>``. Plain StatsD folds every label except the service's
  constant ones (``service``, ``environment``, ``labels``: put them in ``prefix``) into the
  name as ``.<label>.<value>`` in the metric's label order, each value with every run of
  characters outside ``A-Za-z0-9_-`` replaced by one ``_`` (``/users/{id}`` is ``_users_id_``,
  ``0.25`` is ``0_25``, ``+Inf`` is ``_Inf``, an empty value is ``_``). With
  ``dogstatsd: true`` the labels, constant ones included, are tags:
  ``|#method:GET,route:/users/{id}`` (``|``, ``,``, ``#`` and whitespace replaced by ``_``).
  Other characters of a name than ``A-Za-z0-9_.-`` become ``_``.
- **Faults**: the host is resolved on this thread, never on a request; a name that does not
  resolve, or a refused port (UDP reports it on the send after the refused packet), raises
  :class:`ExportError`: one ``Metric export failed`` line per period, the snapshot counted as
  dropped when a newer one replaces it (its counter increases go with the next send).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.registry import Collector

from ..._forksafe import register_at_fork
from ._push import ExportError, PushOutput, Snapshot, _log

__all__ = ["StatsdOutput", "WorkerView", "format_lines", "pack", "split_host"]

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

_GAUGE_TYPES = frozenset({"gauge", "gaugehistogram", "stateset", "unknown"})
_SKIPPED_TYPES = frozenset({"info"})  # labels only, nothing a StatsD daemon can hold
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")
_TAG_UNSAFE = re.compile(r"[|,#\s]")


def split_host(host: str, default_port: int = 8125) -> tuple[str, int]:
    """``"statsd:8125"``, ``"[::1]:8125"`` or ``"statsd"`` as (host, port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else default_port
    name, sep, port = host.rpartition(":")
    if not sep or ":" in name:  # no port, or a bare IPv6 address
        return host, default_port
    return name, int(port)


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class WorkerView(Collector):
    """What one worker sends: its own counters and histograms (``own``), and the gauges of
    the merged view (``gauges``) when values are shared between workers."""

    def __init__(self, own: Collector, gauges: Collector | None = None) -> None:
        self._own = own
        self._gauges = gauges

    def collect(self) -> Iterator[Any]:
        for family in self._own.collect():
            if self._gauges is None or family.type not in _GAUGE_TYPES:
                yield family
        if self._gauges is not None:
            for family in self._gauges.collect():
                if family.type in _GAUGE_TYPES:
                    yield family


class _Sent:
    """The counter values last sent, per series, for every StatsD output of one registry."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[SeriesKey, float] = {}
        self.source: weakref.ref[Collector] | None = None  # own values, for a fork baseline
        self.shared = False  # values live in per-process files: a forked child starts at 0
        self._at_fork: dict[SeriesKey, float] | None = None
        register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )

    def _before_fork(self) -> None:
        # A child forked with in-memory values inherits them: what it should send next is its
        # increase from here, not the parent's unsent part again. Read here, in the parent,
        # where no lock can be left held by a thread the child does not have.
        # (The child replaces or empties the table, so an export under way does not matter.)
        self._at_fork = None
        source = self.source() if self.source is not None else None
        if source is not None and not self.shared:
            with contextlib.suppress(Exception):
                self._at_fork = dict(_counter_values(Snapshot(tuple(source.collect()), 0, 0)))

    def _after_fork_in_parent(self) -> None:
        self._at_fork = None

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()  # an export may have held it in the parent
        self.values = {} if self.shared else (self._at_fork or dict(self.values))
        self._at_fork = None


_SENT: weakref.WeakKeyDictionary[Any, _Sent] = weakref.WeakKeyDictionary()
_SENT_LOCK = threading.Lock()


def sent_for(registry: Any) -> _Sent:
    """The sent-values table of ``registry`` (kept across reconfigurations)."""
    with _SENT_LOCK:
        sent = _SENT.get(registry)
        if sent is None:
            sent = _SENT[registry] = _Sent()
        return sent


def _key(sample: Any) -> SeriesKey:
    return sample.name, tuple(sorted(sample.labels.items()))


def _counter_values(snapshot: Snapshot) -> Iterator[tuple[SeriesKey, float]]:
    for family, sample in snapshot.series():
        if family.type not in _GAUGE_TYPES and family.type not in _SKIPPED_TYPES:
            yield _key(sample), sample.value


class _Formatter:
    def __init__(self, prefix: str, dogstatsd: bool, constant_labels: Mapping[str, str]) -> None:
        prefix = _NAME_UNSAFE.sub("_", prefix).strip(".")
        self.prefix = f"{prefix}." if prefix else ""
        self.dogstatsd = dogstatsd
        self.constant = frozenset(constant_labels)

    def name(self, sample: Any) -> tuple[str, str]:
        """The metric name and the DogStatsD tags (``|#...``, or empty) of a sample."""
        name = self.prefix + _NAME_UNSAFE.sub("_", sample.name)
        if self.dogstatsd:
            tags = ",".join(
                f"{_NAME_UNSAFE.sub('_', k)}:{_TAG_UNSAFE.sub('_', v)}"
                for k, v in sample.labels.items()
            )
            return name, f"|#{tags}" if tags else ""
        for label, value in sample.labels.items():
            if label not in self.constant:
                name += f".{_VALUE_UNSAFE.sub('_', label)}.{_VALUE_UNSAFE.sub('_', value) or '_'}"
        return name, ""


def format_lines(
    snapshot: Snapshot,
    sent: Mapping[SeriesKey, float],
    *,
    prefix: str = "",
    dogstatsd: bool = False,
    constant_labels: Mapping[str, str] | None = None,
) -> Iterator[tuple[list[str], SeriesKey | None, float]]:
    """``(lines, series, value)`` per series to send: counter deltas against ``sent`` (only
    when changed; ``series``/``value`` to record once sent), gauges (``series`` None) whole.
    A negative gauge is two lines that must share a packet."""
    fmt = _Formatter(prefix, dogstatsd, constant_labels or {})
    for family, sample in snapshot.series():
        value = float(sample.value)
        if family.type in _SKIPPED_TYPES or not math.isfinite(value):
            continue
        name, tags = fmt.name(sample)
        if family.type in _GAUGE_TYPES:
            lines = [f"{name}:{_number(value)}|g{tags}"]
            if value < 0:
                lines.insert(0, f"{name}:0|g{tags}")
            yield lines, None, value
            continue
        key = _key(sample)
        last = sent.get(key, 0.0)
        is_sum = sample.name.endswith(("_sum", "_gsum"))
        delta = value - last if value >= last or is_sum else value  # lower: a reset
        if delta != 0:
            yield [f"{name}:{_number(delta)}|c{tags}"], key, value


def pack(units: Iterable[list[str]], max_size: int) -> Iterator[tuple[bytes, int]]:
    """Units of lines (a unit is never split) joined by newlines into packets of at most
    ``max_size`` bytes; ``(packet, units in it)``. A unit larger than a packet is skipped
    (``(b"", 1)`` is yielded for it)."""
    packet = bytearray()
    count = 0
    for unit in units:
        data = "\n".join(unit).encode()
        if len(data) > max_size:
            if packet:  # in order: what came before is sent first
                yield bytes(packet), count
                packet, count = bytearray(), 0
            yield b"", 1
            continue
        if packet and len(packet) + 1 + len(data) > max_size:
            yield bytes(packet), count
            packet, count = bytearray(), 0
        packet += (b"\n" if packet else b"") + data
        count += 1
    if packet:
        yield bytes(packet), count


class StatsdOutput(PushOutput):
    """Sends the worker's metrics to a StatsD daemon every ``interval`` (see the module doc).

    Args:
        host: ``host:port`` of the daemon (UDP; port 8125 when left out).
        prefix: put before every name, followed by a dot.
        max_packet_size: the largest UDP payload sent, in bytes.
        dogstatsd: labels as DogStatsD tags instead of folded into the name.
        constant_labels: the service's labels (left out of folded names).
        sent: the sent-values table of the registry (:func:`sent_for`).
    """

    kind = "statsd"
    merged = False

    def __init__(
        self,
        host: str,
        *,
        prefix: str = "",
        max_packet_size: int = 1432,
        dogstatsd: bool = False,
        constant_labels: Mapping[str, str] | None = None,
        sent: _Sent | None = None,
        **push: Any,
    ) -> None:
        self.host, self.port = split_host(host)
        self.prefix = prefix
        self.max_packet_size = max_packet_size
        self.dogstatsd = dogstatsd
        self.constant_labels = dict(constant_labels or {})
        self._sent = sent if sent is not None else _Sent()
        self._socket: socket.socket | None = None
        self._socket_pid = 0
        self._warned_too_long = False
        shown = f"[{self.host}]" if ":" in self.host else self.host
        push.setdefault("where", f"udp://{shown}:{self.port}")
        super().__init__(**push)

    def export(self, snapshot: Snapshot, timeout: float) -> None:
        conn = self._connect(timeout)  # resolving may be slow: not under the table's lock
        with self._sent.lock:
            sent = self._sent.values
            units = list(format_lines(snapshot, sent, prefix=self.prefix,
                                      dogstatsd=self.dogstatsd,
                                      constant_labels=self.constant_labels))  # fmt: skip
            done = 0
            try:
                for packet, count in pack((lines for lines, _k, _v in units),
                                          self.max_packet_size):  # fmt: skip
                    if packet:
                        conn.send(packet)
                    else:
                        self._too_long(units[done][0][0])
                    for _lines, key, value in units[done : done + count]:
                        if key is not None:
                            sent[key] = value
                    done += count
            except OSError as exc:
                self._close_socket()
                raise ExportError(_describe(exc)) from exc
            finally:
                if done == len(units):  # keep only the series the registry still has
                    keep = {key for key, _value in _counter_values(snapshot)}
                    for key in [k for k in sent if k not in keep]:
                        del sent[key]

    def _connect(self, timeout: float) -> socket.socket:
        if self._socket is not None and self._socket_pid == os.getpid():
            return self._socket
        self._close_socket()  # a forked child's copy of its parent's socket
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            raise ExportError(f"cannot resolve {self.host!r} ({exc})") from exc
        family, kind, proto, _name, address = infos[0]
        conn = socket.socket(family, kind, proto)
        try:
            conn.settimeout(timeout)
            conn.connect(address)  # connected: a refused port is reported by the next send
        except OSError as exc:
            conn.close()
            raise ExportError(_describe(exc)) from exc
        self._socket, self._socket_pid = conn, os.getpid()
        return conn

    def _too_long(self, line: str) -> None:
        self._drop("rejected", 1)
        if not self._warned_too_long:
            self._warned_too_long = True
            _log.warning(
                "StatsD line longer than max_packet_size (%d bytes) not sent: %.80s...",
                self.max_packet_size,
                line,
            )

    def _close_socket(self) -> None:
        conn, self._socket = self._socket, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._close_socket()


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "send timed out"
    return exc.strerror or str(exc) or type(exc).__name__
