"""The training worker: a ``multiprocessing`` *spawn* child of the server, the same program re-run.

It reports through one end of a pipe and watches two flags set by the server (cancel, stop) plus the
pipe itself: if the server disappears (even by ``kill -9``) the worker exits at once, so nothing is
left behind. A crash here only ends this process; the server sees the exit code and marks the job.

A stop or a cancel is acted on at once, from a thread of its own, not at the next step boundary (a
real model's step takes seconds): a stop saves the last completed step (:meth:`Trainee.checkpoint_now`,
which waits at most for an optimizer update, never for a forward or backward pass), reports it, and the
process ends; a cancel reports and ends. The server's shutdown therefore never waits for a step.

Exit codes: 0 finished (completed, cancelled or interrupted, as reported), 1 training error
(reported), 3 server gone.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from backend import faults
from backend.storage_errors import disk_full

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_ORPHANED = 3


def _watch_server(server_pid: int, conn: Connection, interval: float = 0.1) -> None:
    """Exit the moment the server is gone, even after ``kill -9``. The server holds the only reading end of
    our pipe, so its death closes that end: ``poll()`` on our writing end then reports POLLERR at once
    (it waits in the kernel, without the GIL). Where a pipe cannot be polled (Windows), the parent's pid
    is checked every ``interval`` seconds instead."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLERR | select.POLLHUP)
        while True:
            if poller.poll():
                os._exit(EXIT_ORPHANED)
    while True:
        time.sleep(interval)
        if os.getppid() != server_pid:
            os._exit(EXIT_ORPHANED)


def failure_message(exc: BaseException) -> str:
    """What the job's error says: the exception, and what to do about a full disk or a full GPU."""
    message = f"{type(exc).__name__}: {exc}"
    if disk_full(exc):
        return (f"the disk holding the data dir is full ({message}): free some space there, then resume "
                "the job from its last checkpoint")
    from backend.services.model_folder import UNSAFE_PICKLE, unsafe_pickle

    if unsafe_pickle(exc):
        return "the model cannot be loaded: " + UNSAFE_PICKLE.format(file="checkpoint")
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return (f"the GPU ran out of memory ({message[:300]}): lower batch_size or max_seq_length, or pick a "
                "smaller model or dtype, then resume the job from its last checkpoint")
    return message


def release_loading_memory() -> None:
    """Give back the clean file pages and free heap that only startup used (Linux; see
    :mod:`backend.memory_release`): once torch, transformers and peft are imported, before the model is
    loaded (the worker's peak), and again before the first step. A spawned worker re-runs the program's
    startup, and importing the ML stack runs libraries' initialisation once; most of those pages are
    never touched again, and what loading and the steps need comes back as minor faults."""
    from backend.memory_release import release_startup_memory

    released = release_startup_memory()
    if released is not None:
        logging.getLogger(__name__).debug("released %d KiB of clean file pages; RSS %d -> %d KiB",
                                          released.file_kib, released.rss_before_kib, released.rss_after_kib)


class Reporter:
    """The worker's one writer to the pipe: the training loop and the stop thread both report."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.conn.send(event)


class PromptStop:
    """Acts on a stop or cancel the moment it is set: checkpoint (stop only) and end the process."""

    def __init__(self, reporter: Reporter, cancel: Event, stop: Event):
        self.reporter, self.cancel, self.stop = reporter, cancel, stop
        self.trainee: Any = None  # set once loaded; before that there is nothing new to save
        self.finished = threading.Event()  # the loop reported its own outcome: nothing left to do here

    def watch(self) -> None:
        while not self.finished.is_set():
            if self.cancel.wait(0.05) or self.stop.is_set():
                break
        if self.finished.is_set():
            return
        with self.reporter.lock:  # the loop cannot report anything past this point
            if self.finished.is_set():
                return
            try:
                if self.cancel.is_set():
                    status, step = "cancelled", getattr(self.trainee, "completed_step", 0)
                else:
                    step = self.trainee.checkpoint_now() if self.trainee is not None else 0
                    if self.trainee is not None:
                        self.reporter.conn.send({"type": "checkpoint", "step": step})
                    status = "interrupted"
                self.reporter.conn.send({"type": "finished", "status": status, "step": step, "loss": None})
                code = EXIT_OK
            except Exception as exc:
                self.reporter.conn.send({"type": "error", "message": failure_message(exc),
                                         "traceback": traceback.format_exc()})
                code = EXIT_ERROR
            finally:
                self.reporter.conn.close()
        os._exit(code)


def worker_main(spec_data: dict[str, Any], conn: Connection, cancel: Event, stop: Event, server_pid: int,
                release_memory: bool = False) -> None:
    """Entry point of the worker process (a module-level function, so ``spawn`` can import it)."""
    from backend.bootstrap import prepare_process

    prepare_process()
    threading.Thread(target=_watch_server, args=(server_pid, conn), name="server-watch", daemon=True).start()
    faults.check("worker-start")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s worker %(process)d: %(message)s")
    from backend.services.training import StopRequest, Trainee, TrainingSpec, run_training

    reporter = Reporter(conn)
    prompt = PromptStop(reporter, cancel, stop)
    threading.Thread(target=prompt.watch, name="prompt-stop", daemon=True).start()

    def stop_requested() -> StopRequest:
        if cancel.is_set():
            return "cancel"
        if stop.is_set():
            return "stop"
        return None

    def adopt(trainee: Trainee) -> None:
        prompt.trainee = trainee

    try:
        outcome = run_training(TrainingSpec.from_dict(spec_data), reporter.emit, stop_requested,
                               release=release_loading_memory if release_memory else None, on_trainee=adopt)
        with reporter.lock:
            prompt.finished.set()
            conn.send({"type": "finished", "status": outcome.status, "step": outcome.step, "loss": outcome.loss})
        exit_code = EXIT_OK
    except Exception as exc:
        with reporter.lock:
            prompt.finished.set()
            conn.send({"type": "error", "message": failure_message(exc), "traceback": traceback.format_exc()})
        exit_code = EXIT_ERROR
    finally:
        conn.close()
    os._exit(exit_code)  # skip interpreter teardown of torch threads; everything is saved already
