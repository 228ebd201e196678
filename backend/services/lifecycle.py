"""Graceful shutdown from every direction (SIGTERM / Ctrl-C, ``POST /api/shutdown``, a dead parent)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # exists, owned by someone else
        return True


class Lifecycle:
    def __init__(self) -> None:
        self.shutting_down = threading.Event()
        self.reason: str | None = None
        self._exit_callbacks: list[Callable[[], None]] = []

    def on_shutdown_request(self, callback: Callable[[], None]) -> None:
        self._exit_callbacks.append(callback)

    def request_shutdown(self, reason: str) -> None:
        if self.shutting_down.is_set():
            return
        self.reason = reason
        log.info("shutdown requested: %s", reason)
        self.shutting_down.set()
        for callback in self._exit_callbacks:
            callback()

    def watch_parent(self, parent_pid: int, interval: float = 0.5) -> threading.Thread:
        """Shut down when ``parent_pid`` dies (the desktop app crashed or was killed)."""
        direct_parent = os.getppid() == parent_pid

        def watch() -> None:
            while not self.shutting_down.wait(interval):
                # A direct parent that died leaves us re-parented even if its pid is reused later.
                gone = (direct_parent and os.getppid() != parent_pid) or not process_alive(parent_pid)
                if gone:
                    self.request_shutdown(f"parent process {parent_pid} exited")
                    return

        thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
        thread.start()
        return thread


def stop_children(timeout_s: float = 3.0) -> list[int]:
    """Before the process ends without the interpreter's teardown: let its children end first, so that a
    caller who waited for the server's exit finds nothing of it left. multiprocessing's resource tracker
    ends when the last writer of its pipe closes it (it unlinks any semaphore left registered first);
    spawned workers have been joined by the job manager's shutdown. Waits ``timeout_s`` at most and
    returns the pids still alive then (logged; they are not killed: the tracker's cleanup is theirs)."""
    from multiprocessing import active_children, resource_tracker

    pids: list[int] = [child.pid for child in active_children() if child.pid is not None]
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    fd, pid = getattr(tracker, "_fd", None), getattr(tracker, "_pid", None)
    if fd is not None and pid is not None:
        try:
            os.close(fd)  # its EOF: the tracker cleans up and exits
            tracker._fd = None  # type: ignore[union-attr]
            pids.append(pid)
        except OSError:
            pass
    processes = []
    for child in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(child))
    _, still = psutil.wait_procs(processes, timeout=timeout_s)  # reaps our children as they end
    alive = [process.pid for process in still]
    if alive:
        log.warning("child processes still running at exit after %.1fs: %s", timeout_s, alive)
    return alive
