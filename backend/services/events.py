"""Wake server-sent-event streams when a job changes; the events themselves live in SQLite.

The job monitor runs in plain threads; the streams are coroutines on the server's event loop. A stream
registers an ``asyncio.Event`` for its job, clears it, reads what is new from the store, sends it, then
waits on the event (with a timeout, so a missed wake-up only costs latency, never an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict

ALL_JOBS = "*"


class JobChangeNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters[job_id].add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters[job_id].discard(event)
            if not self._waiters[job_id]:
                del self._waiters[job_id]

    def notify(self, job_id: str) -> None:
        """Thread-safe: wake every stream of ``job_id`` (and those of all jobs)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call: then nobody is listening.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake, job_id)

    def notify_all(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, ALL_JOBS)

    def _wake(self, job_id: str) -> None:
        with self._lock:
            if job_id == ALL_JOBS:
                targets = [event for events in self._waiters.values() for event in events]
            else:
                targets = list(self._waiters.get(job_id, ()))
        for event in targets:
            event.set()
