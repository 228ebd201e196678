"""Blocking work off the event loop, each kind behind its own limit, so that no kind can take every
thread from the others: store reads (job rows, events, lists) never wait behind a model probe or a
merge, and nothing at all waits behind a generation, which has a thread of its own
(:mod:`backend.api.routes.inference`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from starlette.requests import Request

T = TypeVar("T")
READ_THREADS = 16  # SQLite reads: short, behind one connection's lock
WORK_THREADS = 4  # model probes, registrations, job creation (may probe), system facts (imports torch)


@dataclass
class Limiters:
    """Made on first use, on the event loop that serves: a limiter belongs to the loop that first uses it,
    and making one loads anyio's asyncio backend, which startup does not otherwise need (measured with
    the lazy h11 protocol of :mod:`backend.connections`: startup instructions 1,817 M -> see the commit)."""

    _reads: CapacityLimiter | None = None
    _work: CapacityLimiter | None = None

    @property
    def reads(self) -> CapacityLimiter:
        if self._reads is None:
            self._reads = CapacityLimiter(READ_THREADS)
        return self._reads

    @property
    def work(self) -> CapacityLimiter:
        if self._work is None:
            self._work = CapacityLimiter(WORK_THREADS)
        return self._work


def make_limiters() -> Limiters:
    return Limiters()


async def read(request: Request, function: Callable[..., T], *args: Any) -> T:
    return await to_thread.run_sync(function, *args, limiter=request.app.state.limiters.reads)


async def work(request: Request, function: Callable[..., T], *args: Any) -> T:
    return await to_thread.run_sync(function, *args, limiter=request.app.state.limiters.work)
