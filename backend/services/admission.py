"""Who may use the loaded model next: one at a time, a bounded queue behind, and nothing held for a
client that left.

Generations and merges each need the model (and its memory) to themselves. They wait for it here, on
the event loop: a waiting request holds no thread, so any number of them cannot starve the routes that
do (``/health``, job reads, SSE). Beyond :attr:`Admission.max_waiting` waiting requests the answer is
429 with ``Retry-After`` (:class:`backend.errors.Busy`); a request whose client disconnects while it
waits leaves the queue at once.

:class:`TokenChannel` carries a streamed generation's text from its thread to the response, bounded: when
the client stops reading, the response's ``send()`` waits as soon as the connection's few KiB of send
buffers are full (``backend.connections.bound_send_buffers``), the channel stops being emptied, and the
generation stops :data:`STALL_S` later (plus the time of the token being computed), whatever
``max_new_tokens``, and the model is free again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from backend.errors import Busy

STALL_S = 10.0  # a streamed generation whose reader took nothing for this long is stopped
CHANNEL_CAPACITY = 8  # pieces in flight between the generation thread and the response


class ClientGone(Exception):
    """The client disconnected while its request waited: nothing to do, nobody to answer."""


@dataclass
class Ticket:
    """The right to use the model, until :meth:`release` (idempotent, from any thread)."""

    lock: asyncio.Lock
    loop: asyncio.AbstractEventLoop
    released: bool = False
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self._guard:
            if self.released:
                return
            self.released = True
        if _on_loop(self.loop):
            self.lock.release()
        else:
            self.loop.call_soon_threadsafe(self.lock.release)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Admission:
    def __init__(self, max_waiting: int = 4, retry_after_s: int = 2):
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self.waiting = 0
        self._lock: asyncio.Lock | None = None

    async def enter(self, gone: Callable[[], Awaitable[None]] | None = None) -> Ticket:
        """Wait for the model; :class:`Busy` when too many wait already, :class:`ClientGone` when ``gone``
        (it returns when the client disconnects) finishes first."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        lock = self._lock
        # Waiters count whether or not the model is busy this instant: between one ticket's release and the
        # next waiter's acquire the lock is free, and a newcomer checking only that would join the queue
        # past its bound (seen: 10 waiting of 4, under a flood of generations that finished quickly).
        if (lock.locked() or self.waiting) and self.waiting >= self.max_waiting:
            raise Busy(f"{self.waiting} requests already wait for the model; retry in {self.retry_after_s} s",
                       retry_after_s=self.retry_after_s)
        self.waiting += 1
        acquire = asyncio.ensure_future(lock.acquire())
        watcher = asyncio.ensure_future(gone()) if gone is not None else None
        try:
            pending = {acquire} if watcher is None else {acquire, watcher}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting -= 1
            if watcher is not None:
                watcher.cancel()
        if not acquire.done():
            acquire.cancel()
            raise ClientGone()
        return Ticket(lock, asyncio.get_running_loop())


_END = object()


class TokenChannel:
    """Text pieces from a generation thread to an async reader, bounded (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cancel: threading.Event, *, stall_s: float = STALL_S,
                 capacity: int = CHANNEL_CAPACITY):
        self.loop, self.cancel, self.stall_s = loop, cancel, stall_s
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._slots = threading.Semaphore(capacity)
        self.last_taken = time.monotonic()
        self.stalled = False

    # -- the generation thread ------------------------------------------------------------------------
    def stalled_now(self) -> bool:
        return time.monotonic() - self.last_taken > self.stall_s

    def put(self, text: str) -> None:
        """Hand a piece to the reader; when the reader has taken nothing for ``stall_s``, cancel instead."""
        while not self._slots.acquire(timeout=0.1):
            if self.cancel.is_set():
                return
            if self.stalled_now():
                self.stalled = True
                self.cancel.set()
                return
        self.loop.call_soon_threadsafe(self._queue.put_nowait, text)

    def close(self, error: BaseException | None = None) -> None:
        self.loop.call_soon_threadsafe(self._queue.put_nowait, error if error is not None else _END)

    # -- the reader (event loop) ------------------------------------------------------------------------
    async def get(self) -> str | None:
        """The next piece; None at the end; the generation's error is raised."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        self._slots.release()
        self.last_taken = time.monotonic()
        return str(item)
