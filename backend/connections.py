"""Bounded connections and a log that cannot flood.

A slow or buggy client (or a hostile local process) can open connections and never use them. Left alone
they use up the server's file descriptors, and then neither ``/health`` nor an upload gets in, while
every failed ``accept()`` is logged. Here:

- :func:`raise_descriptor_limit`: the soft ``RLIMIT_NOFILE`` goes up to the hard limit (POSIX);
- :func:`connection_cap`: the most connections kept open, below that limit with a reserve for the
  database, logs, model files and workers;
- :func:`guarded_protocol`: uvicorn's h11 protocol that stamps each connection's last activity and bounds
  what it buffers on its way out (:func:`bound_send_buffers`). At the
  cap, a new connection evicts the one idle the longest (so ``/health`` always gets in); when every
  connection is busy, the new one is closed at once. :func:`close_idle` closes connections idle for
  longer than the timeout, whether they never sent a request or kept one alive.
- :class:`RepeatGate`: a message logged again within its interval is counted, not written, and the
  count is written with its next occurrence: a fault that repeats cannot fill stderr or the disk.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

SEND_BUFFER_BYTES = 8192  # the kernel's send buffer of each connection (Linux doubles it for bookkeeping)
WRITE_HIGH_WATER_BYTES = 8192  # the event loop's write buffer: beyond it a response's send() waits
DESCRIPTOR_RESERVE = 256  # database, logs, model files, worker pipes, the listening socket
MAX_CONNECTIONS = 4096
log = logging.getLogger(__name__)


def raise_descriptor_limit() -> int | None:
    """Raise the soft descriptor limit to the hard one (capped at 65536); returns the limit now (None where
    the OS has none to raise)."""
    try:
        import resource
    except ImportError:  # Windows: no per-process descriptor limit of this kind
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(descriptor_limit: int | None, configured: int = 0) -> int:
    if configured:
        return configured
    if descriptor_limit is None:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, descriptor_limit - DESCRIPTOR_RESERVE))


def _busy(protocol: Any) -> bool:
    cycle = getattr(protocol, "cycle", None)
    return cycle is not None and not cycle.response_complete


def _guarded_class(max_connections: int) -> type[Any]:
    """uvicorn's h11 protocol, with the cap: made when the first connection arrives, as uvicorn itself
    imports its protocol module only then (importing h11 at startup cost ~40 M instructions of the ~1.8 G
    from spawn to ready)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            self.last_active = time.monotonic()
            super().connection_made(transport)
            bound_send_buffers(transport)
            if len(self.connections) <= max_connections:
                return
            idle = [c for c in self.connections if c is not self and not _busy(c)]
            if idle:
                oldest = min(idle, key=lambda c: getattr(c, "last_active", 0.0))
                oldest.transport.close()
            else:  # every connection is serving a request: this one waits for nothing, it is refused
                transport.close()

        def data_received(self, data: bytes) -> None:
            self.last_active = time.monotonic()
            super().data_received(data)

    return GuardedH11Protocol


def bound_send_buffers(transport: Any) -> None:
    """Keep what a connection buffers on its way out to a few KiB: a response's ``send()`` then waits as
    soon as the client stops reading, so a streamed generation notices a stalled reader after a few
    hundred tokens, not after the hundreds of KiB that a loopback socket's autotuned buffer holds (its
    tokens would all fit: the generation ran to its end, holding the model). Local clients lose nothing:
    loopback moves a 8 KiB buffer many times a millisecond."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)


def guarded_protocol(max_connections: int) -> Callable[..., Any]:
    """What uvicorn calls to make each connection's protocol (it takes a class or any such callable):
    the guarded h11 protocol, its class made on the first call."""
    made: list[type[Any]] = []

    def protocol(*args: Any, **kwargs: Any) -> Any:
        if not made:
            made.append(_guarded_class(max_connections))
        return made[0](*args, **kwargs)

    return protocol


def close_idle(connections: set[Any], idle_timeout_s: float, now: float | None = None) -> int:
    """Close every connection that has sent nothing for ``idle_timeout_s`` and is not serving a request."""
    now = time.monotonic() if now is None else now
    closed = 0
    for connection in list(connections):
        if not _busy(connection) and now - getattr(connection, "last_active", now) > idle_timeout_s:
            connection.transport.close()
            closed += 1
    return closed


class RepeatGate(logging.Handler):
    """The root logger's one handler: forwards each record to ``targets`` (stderr, the log file), but a
    message seen again within ``interval_s`` is counted instead, and the count goes out with the next one
    that passes. Keyed by logger, level and message template (not its arguments)."""

    def __init__(self, targets: list[logging.Handler], interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.targets, self.interval_s, self.clock = targets, interval_s, clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._held: dict[tuple[str, int, str], int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"{record.msg} [and {held} more like it in the last {self.interval_s:.0f} s, not logged]"
        if len(self._last) > 10_000:  # many distinct messages: forget the oldest half
            for stale in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                self._last.pop(stale, None)
                self._held.pop(stale, None)
        for target in self.targets:
            if record.levelno >= target.level:
                target.handle(record)

    def flush(self) -> None:
        for target in self.targets:
            target.flush()

    def close(self) -> None:
        for target in self.targets:
            target.close()
        super().close()
