"""The job state machine: the statuses, every allowed edge, and the one function that moves a job.

::

    queued ──▶ running ──▶ completed
      │  │        ├──────▶ cancelled      (cancel: the worker is told, then terminated if slow)
      │  │        ├──────▶ failed         (training raised, or its progress could not be recorded)
      │  │        └──────▶ interrupted    (server stop with a checkpoint, worker killed, or a server
      │  └──▶ failed                       that died: found ``running`` at the next start)
      └──▶ cancelled                      (cancelled before it started)
    interrupted / failed ──resume──▶ queued   (continues from the last checkpoint when there is one)

Every status change goes through :func:`move`, which checks the edge against :data:`TRANSITIONS` and
writes the row and the event that announces it in one transaction, conditional on the status the row
has *in the database*: two servers (or two threads) can never both move a job out of the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final, Protocol

from backend.errors import Conflict, NotFound


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: Final[Mapping[tuple[JobStatus, JobStatus], str]] = {
    (JobStatus.QUEUED, JobStatus.RUNNING): "its worker started",
    (JobStatus.QUEUED, JobStatus.CANCELLED): "cancelled before it started",
    (JobStatus.QUEUED, JobStatus.FAILED): "its worker could not be started",
    (JobStatus.RUNNING, JobStatus.COMPLETED): "the worker trained every step and the adapter was recorded",
    (JobStatus.RUNNING, JobStatus.CANCELLED): "cancelled while it ran",
    (JobStatus.RUNNING, JobStatus.FAILED): "training raised, or its progress or adapter could not be recorded",
    (JobStatus.RUNNING, JobStatus.INTERRUPTED): "the server stopped, the worker was killed, or the server died",
    (JobStatus.INTERRUPTED, JobStatus.QUEUED): "resumed",
    (JobStatus.FAILED, JobStatus.QUEUED): "resumed",
}

ACTIVE: Final = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL: Final = frozenset(set(JobStatus) - ACTIVE)
RESUMABLE: Final = frozenset(source for source, target in TRANSITIONS if target is JobStatus.QUEUED)
CANCELLABLE: Final = frozenset(source for source, target in TRANSITIONS if target is JobStatus.CANCELLED)


class IllegalTransition(Conflict):
    """A job cannot go from its status to the one asked for (409, naming what is allowed)."""


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    return frozenset(source for source, to in TRANSITIONS if to is target)


def targets_of(source: JobStatus) -> frozenset[JobStatus]:
    return frozenset(to for origin, to in TRANSITIONS if origin is source)


def check_edge(job_id: str, current: JobStatus | str, target: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → target`` is in the table."""
    current = JobStatus(current)
    if (current, target) not in TRANSITIONS:
        allowed = sorted(str(source) for source in sources_of(target))
        raise IllegalTransition(
            f"job {job_id!r} is {current}; only {' or '.join(allowed)} jobs can become {target}",
            allowed=allowed,
        )


class JobRecords(Protocol):
    """What :func:`move` needs of the store (:class:`backend.services.store.Store`)."""

    def move_job(self, job_id: str, *, sources: frozenset[str], fields: Mapping[str, Any], event_type: str,
                 data: Mapping[str, Any]) -> str | None:
        """The status the row had (None: no such job); the row and event are written only if it is in
        ``sources``."""


def move(records: JobRecords, job_id: str, target: JobStatus, *, event: Mapping[str, Any] | None = None,
         **fields: Any) -> None:
    """Move a job to ``target``, writing ``fields`` and a ``state`` event in one transaction, only if the
    row's status in the database is one the table allows to reach ``target``. Raises
    :class:`IllegalTransition` when it is not (the row is untouched); database errors propagate."""
    data = {"status": str(target), **(event or {})}
    sources = sources_of(target)
    previous = records.move_job(job_id, sources=frozenset(str(source) for source in sources),
                                fields={**fields, "status": str(target)}, event_type="state", data=data)
    if previous is None:
        raise NotFound(f"job {job_id!r} not found")
    check_edge(job_id, previous, target)
