"""Running jobs: launching a worker, supervising it, and the one-at-a-time queue.

- :class:`WorkerLauncher` starts a worker for a spec; :class:`SpawnLauncher` is the real one (a
  ``multiprocessing`` spawn child: the same program, frozen or not). Tests inject their own launcher,
  whose workers are a pipe they write to.
- :class:`Supervisor` follows one worker in a thread of its own: it hands every message to the
  :class:`Recorder` (the job manager), keeps reading even when recording fails (a worker must never
  block on a full pipe), and concludes the job exactly once when the worker is gone.
- :class:`Scheduler` starts the oldest queued job when no worker runs, and stops the running one
  (checkpoint first) when the server stops.

Validation (:mod:`backend.services.job_config`) and the state machine
(:mod:`backend.services.job_states`) live elsewhere; nothing here decides a job's status.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from backend.services.training import TrainingSpec
from backend.services.worker import worker_main

log = logging.getLogger(__name__)


class ProcessLike(Protocol):
    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class EventLike(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...


@dataclass
class WorkerHandle:
    """One started worker and what the supervisor learned of it."""

    job_id: str
    process: ProcessLike
    conn: Connection  # the reading end; the worker holds the only writer, so EOF means it is gone
    cancel: EventLike
    stop: EventLike
    outcome: dict[str, Any] | None = None  # the worker's "finished" message
    error: str | None = None  # what the worker reported when training raised
    record_error: str | None = None  # what the server failed to record (the job is stopped for it)
    finished: threading.Event = field(default_factory=threading.Event)  # concluded

    def remember(self, message: dict[str, Any]) -> None:
        if message.get("type") == "finished":
            self.outcome = message
        elif message.get("type") == "error":
            self.error = message.get("message")


class WorkerLauncher(Protocol):
    def launch(self, spec: TrainingSpec) -> WorkerHandle: ...


class SpawnLauncher:
    """Workers as ``multiprocessing`` spawn children: the same program, re-run (frozen or not)."""

    def __init__(self, release_memory: bool = False):
        self.release_memory = release_memory
        self._context = multiprocessing.get_context("spawn")

    def launch(self, spec: TrainingSpec) -> WorkerHandle:
        receiver, sender = self._context.Pipe(duplex=False)
        cancel, stop = self._context.Event(), self._context.Event()
        process = self._context.Process(
            target=worker_main, args=(spec.to_dict(), sender, cancel, stop, os.getpid(), self.release_memory),
            name=f"peft-worker-{spec.job_id}", daemon=True,
        )
        process.start()
        sender.close()  # the worker holds the only writer: EOF here means it is gone
        return WorkerHandle(job_id=spec.job_id, process=process, conn=receiver, cancel=cancel, stop=stop)


class Recorder(Protocol):
    """What the supervisor reports to (the job manager)."""

    def record(self, handle: WorkerHandle, message: dict[str, Any]) -> None: ...

    def conclude(self, handle: WorkerHandle) -> None: ...


class Supervisor:
    def __init__(self, handle: WorkerHandle, recorder: Recorder, on_end: Callable[[WorkerHandle], None]):
        self.handle, self.recorder, self.on_end = handle, recorder, on_end
        self.thread = threading.Thread(target=self.run, name=f"monitor-{handle.job_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        handle = self.handle
        try:
            while True:
                try:
                    message = handle.conn.recv()
                except (EOFError, OSError):
                    break
                handle.remember(message)
                if handle.record_error is None:
                    try:
                        self.recorder.record(handle, message)
                    except Exception as exc:
                        cannot_record(handle, f"job progress ({message.get('type')})", exc)
        finally:
            handle.conn.close()
            handle.process.join()
            try:
                self.recorder.conclude(handle)
            finally:
                handle.finished.set()
                self.on_end(handle)


def cannot_record(handle: WorkerHandle, what: str, exc: BaseException) -> None:
    """A job whose progress cannot be recorded cannot be followed: stop its worker (it checkpoints first
    when it can); the job is concluded as failed, resumable."""
    if handle.record_error is None:
        log.error("could not record %s of job %s (%s: %s); stopping its worker", what, handle.job_id,
                  type(exc).__name__, exc)
        handle.record_error = f"could not record {what} ({type(exc).__name__}: {exc})"
    handle.stop.set()


def terminate(process: ProcessLike, grace_s: float = 0.5) -> None:
    process.terminate()
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join(grace_s)


class Scheduler:
    """One worker at a time: :meth:`start` launches and supervises it; once it has ended and the recorder
    concluded its job, ``when_idle`` picks the next one."""

    def __init__(self, launcher: WorkerLauncher, recorder: Recorder, *, stop_timeout_s: float,
                 when_idle: Callable[[], None] = lambda: None):
        self.launcher, self.recorder = launcher, recorder
        self.stop_timeout_s = stop_timeout_s
        self.when_idle = when_idle  # called once a worker has ended and been concluded: start the next job
        self.lock = threading.RLock()
        self.running: WorkerHandle | None = None
        self.accepting = True

    def busy(self) -> bool:
        with self.lock:
            return self.running is not None

    def start(self, spec: TrainingSpec, record_start: Callable[[WorkerHandle], None]) -> WorkerHandle:
        """Launch a worker for ``spec`` and supervise it; ``record_start`` records that it runs (a failure
        there stops the worker, and the supervisor concludes the job)."""
        handle = self.launcher.launch(spec)
        with self.lock:
            self.running = handle
        # The supervisor first: from here on, whatever fails, the job is concluded when the worker ends.
        Supervisor(handle, self.recorder, self._ended).start()
        try:
            record_start(handle)
        except Exception as exc:
            cannot_record(handle, "the start", exc)
        return handle

    def _ended(self, handle: WorkerHandle) -> None:
        with self.lock:
            if self.running is handle:
                self.running = None
        self.when_idle()

    def cancel(self, handle: WorkerHandle) -> None:
        """Tell the worker to cancel; terminate it if it has not ended within the stop timeout."""
        handle.cancel.set()

        def enforce() -> None:
            handle.process.join(self.stop_timeout_s)
            if handle.process.is_alive():
                terminate(handle.process)

        threading.Thread(target=enforce, name="cancel", daemon=True).start()

    def shutdown(self) -> None:
        """Stop accepting work; the running worker checkpoints and ends within the stop timeout."""
        with self.lock:
            self.accepting = False
            running = self.running
        if running is None:
            return
        running.stop.set()
        running.process.join(self.stop_timeout_s)
        if running.process.is_alive():
            log.warning("worker %s did not stop within %.1fs; terminating", running.process.pid, self.stop_timeout_s)
            terminate(running.process)
        running.finished.wait(1.0)
