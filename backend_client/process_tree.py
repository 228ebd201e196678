"""Stop a launched backend and everything it started, and say what (if anything) was left behind.

A backend is a process tree: a onefile build is a bootstrap process plus the server it unpacks,
training adds a worker and multiprocessing's resource tracker. Stopping it means: ask (an HTTP
shutdown or a signal), wait, give the children the same grace, then terminate and kill whatever is
still alive. The service manager, ``compile verify``, the benchmarks and the tests all stop backends
through :func:`stop_tree`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

CHILD_GRACE_S = 2.0


@dataclass(frozen=True)
class StopReport:
    graceful: bool  # the launched process exited on its own after the request, within the timeout
    exit_code: int | None
    exit_seconds: float  # from the request to the launched process's exit
    seconds: float  # until every process of the tree was gone
    leftover_pids: tuple[int, ...]  # still alive after the grace time, SIGTERM and SIGKILL (should be none)


def tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants alive now (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def pid_alive(pid: int) -> bool:
    try:
        return alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def send_terminate(popen: subprocess.Popen[bytes]) -> None:
    """The graceful signal: SIGTERM, or CTRL_BREAK_EVENT to a Windows process group."""
    with contextlib.suppress(ProcessLookupError, OSError):
        if os.name == "nt":
            popen.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]  # Windows only
        else:
            popen.send_signal(signal.SIGTERM)


def stop_tree(
    popen: subprocess.Popen[bytes], *, timeout: float = 5.0, ask: Callable[[], bool] | None = None,
    known: Iterable[psutil.Process] = (),
) -> StopReport:
    """Stop ``popen`` and its tree. ``ask`` requests a graceful stop (returns False when it could not,
    then SIGTERM is sent); ``known`` are processes seen earlier that must be gone too (kept as
    ``psutil.Process``, which knows a reused pid is another process)."""
    started = time.perf_counter()
    snapshot = tree(popen.pid)
    if popen.poll() is None and not (ask is not None and ask()):
        send_terminate(popen)
    graceful = True
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        graceful = False
        popen.kill()
        popen.wait(5)
    exit_seconds = time.perf_counter() - started
    seen = {process.pid: process for process in snapshot if process.pid != popen.pid}
    for process in known:
        if process.pid != popen.pid:
            seen.setdefault(process.pid, process)
    survivors = [process for process in seen.values() if alive(process)]
    if survivors:  # a clean exit takes its children along within the grace time; give them that, then force
        _, survivors = psutil.wait_procs(survivors, timeout=CHILD_GRACE_S)
        survivors = [process for process in survivors if alive(process)]
    if survivors:
        graceful = False
    for action in ("terminate", "kill"):
        for process in survivors:
            with contextlib.suppress(psutil.Error):
                getattr(process, action)()
        _, survivors = psutil.wait_procs(survivors, timeout=CHILD_GRACE_S)
    leftovers = tuple(sorted(process.pid for process in survivors if alive(process)))
    return StopReport(graceful, popen.returncode, exit_seconds, time.perf_counter() - started, leftovers)
