"""A worker launcher for tests: each "worker" is the sending end of a real pipe that the test writes to, and
a stand-in process whose exit code the test sets. The job manager and its supervisor run as they do
in the server; nothing is patched."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from backend.services.job_runner import WorkerHandle
from backend.services.training import TrainingSpec


class StandInProcess:
    def __init__(self) -> None:
        self.pid = 4242
        self.exitcode: int | None = None
        self.ended = threading.Event()
        self.terminated = False

    def join(self, timeout: float | None = None) -> None:
        self.ended.wait(timeout)

    def is_alive(self) -> bool:
        return not self.ended.is_set()

    def terminate(self) -> None:
        self.terminated = True
        self.exit(-15)

    def kill(self) -> None:
        self.exit(-9)

    def exit(self, code: int) -> None:
        if self.exitcode is None:
            self.exitcode = code
        self.ended.set()


@dataclass
class ScriptedWorker:
    spec: TrainingSpec
    sender: Connection
    process: StandInProcess
    handle: WorkerHandle

    def send(self, *messages: dict[str, Any]) -> None:
        for message in messages:
            self.sender.send(message)

    def end(self, exitcode: int = 0, *messages: dict[str, Any], outcome: dict[str, Any] | None = None,
            wait: bool = True) -> None:
        """Report ``messages`` (and a ``finished`` message with ``outcome``), exit with ``exitcode``, and
        (``wait``) wait until the supervisor has concluded the job."""
        self.send(*messages)
        if outcome is not None:
            self.sender.send({"type": "finished", **outcome})
        self.process.exit(exitcode)
        self.sender.close()
        if wait:
            assert self.handle.finished.wait(10), "the supervisor did not conclude the job"


@dataclass
class FakeLauncher:
    launched: list[ScriptedWorker] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)  # raised by the next launches, in order
    started: threading.Event = field(default_factory=threading.Event)

    def launch(self, spec: TrainingSpec) -> WorkerHandle:
        if self.failures:
            raise self.failures.pop(0)
        receiver, sender = multiprocessing.Pipe(duplex=False)
        process = StandInProcess()
        handle = WorkerHandle(job_id=spec.job_id, process=process, conn=receiver, cancel=threading.Event(),
                              stop=threading.Event())
        self.launched.append(ScriptedWorker(spec, sender, process, handle))
        self.started.set()
        return handle

    def worker(self, index: int = -1, timeout: float = 10) -> ScriptedWorker:
        """The index-th launched worker, waiting for it to be launched."""
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if len(self.launched) > (index if index >= 0 else 0):
                return self.launched[index]
            deadline.wait(0.01)
        raise AssertionError("no worker was launched")
