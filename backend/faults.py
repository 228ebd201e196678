"""Named fault points, for testing how the backend fails: ``PEFT_ENGINE_FAULTS=point[,point...]``.

Each point is a place where the real world can fail (a worker that cannot start, a database write
that fails as on a full disk). Tests of the *built* artifact cannot patch its code, so they set the
variable, which reaches the training workers too (they inherit the environment). Unset, as in every
normal run, each check is one set lookup.

Points:

- ``worker-start``: the training worker dies before it reports anything (exit code 1);
- ``worker-step``: the worker raises an error at its first training step;
- ``monitor-write``: the server fails to record what a worker reported (as ``database or disk is full``);
- ``job-start``: the server fails to start a queued job's worker;
- ``merge-stall``: a merge stops for a minute once its staging folder is written (a test kills the
  server then, as a crash would, and checks the next start removes what it left).
"""

from __future__ import annotations

import os
import sqlite3

ENV = "PEFT_ENGINE_FAULTS"
POINTS = frozenset({"worker-start", "worker-step", "monitor-write", "job-start", "merge-stall"})
STALL_S = 60.0


class InjectedFault(RuntimeError):
    """A failure injected through ``PEFT_ENGINE_FAULTS``."""


def active(environ: dict[str, str] | None = None) -> frozenset[str]:
    """The injected points; ValueError naming any unknown one (the server then refuses to start)."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    named = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = named - POINTS
    if unknown:
        raise ValueError(f"{ENV} names unknown fault point(s) {', '.join(sorted(unknown))}: "
                         f"use {', '.join(sorted(POINTS))}, or unset it")
    return named


_active: frozenset[str] | None = None


def check(point: str) -> None:
    """Raise at ``point`` when that fault is injected."""
    global _active
    if _active is None:
        _active = active()
    if point in _active:
        if point == "merge-stall":
            import time

            time.sleep(STALL_S)
            return
        if point == "monitor-write":
            raise sqlite3.OperationalError("database or disk is full (injected: monitor-write)")
        raise InjectedFault(f"injected fault: {point}")
