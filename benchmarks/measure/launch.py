"""Launch one variant and time it: spawn → first ``200`` from ``GET /health`` (polled every 1.5 ms with
a short socket timeout, ``perf_counter_ns``), then idle memory, optionally a short training job, then a
graceful stop with the whole tree reaped.

The port is chosen here (bind 0, close, pass ``--port``) so that readiness is measured by the HTTP
answer itself, not by the ready line.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from backend_client.http import http_request
from backend_client.process_tree import stop_tree
from benchmarks.measure.memory import PeakSampler, TreeMemory, measure_tree

POLL_INTERVAL_S = 0.0015
# Variables that change how the measured program runs, not what it is: a shell or CI that sets
# PYTHONDONTWRITEBYTECODE would make every source launch compile the backend again (~150 ms), which no
# developer's checkout and no build does. The launch environment leaves them out.
UNMEASURED_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC", "PYTHONDEVMODE",
                        "PYTHONVERBOSE", "PYTHONMALLOC", "PYTHONFAULTHANDLER")


def measured_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a measured launch: without UNMEASURED_VARIABLES, with ``extra``."""
    environment = {key: value for key, value in os.environ.items() if key not in UNMEASURED_VARIABLES}
    return {**environment, **(extra or {})}


class LaunchError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_ok(port: int, timeout: float = 0.05) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class Running:
    popen: subprocess.Popen[bytes]
    port: int
    token: str
    startup_s: float
    startup_blocked_s: float | None = None  # of startup_s, the time the tree was neither running nor runnable

    def request(self, method: str, path: str, body: object = None, timeout: float = 60) -> tuple[int, bytes]:
        response = http_request(self.port, method, path, body, token=self.token, timeout=timeout)
        return response.status, response.body

    def memory(self) -> TreeMemory:
        return measure_tree(self.popen.pid)


def launch(command: tuple[str, ...], *, cwd: Path | None, data_dir: Path, env: dict[str, str] | None = None,
           timeout: float = 180.0) -> Running:
    port, token = free_port(), secrets.token_urlsafe(24)
    environment = measured_environment({**(env or {}), "PEFT_ENGINE_TOKEN": token})
    argv = [*command, "--port", str(port), "--data-dir", str(data_dir), "--parent-pid", str(os.getpid()),
            "--log-level", "warning"]
    started = time.perf_counter_ns()
    popen = subprocess.Popen(argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = started + int(timeout * 1e9)
    while not health_ok(port):
        if popen.poll() is not None:
            raise LaunchError(f"{command[0]} exited with {popen.returncode} before answering /health")
        if time.perf_counter_ns() > deadline:
            stop(Running(popen, port, token, 0.0))
            raise LaunchError(f"{command[0]} did not answer /health within {timeout:.0f}s")
        time.sleep(POLL_INTERVAL_S)
    startup = (time.perf_counter_ns() - started) / 1e9
    scheduled = scheduled_seconds(popen.pid)
    blocked = max(0.0, startup - scheduled) if scheduled is not None else None
    return Running(popen, port, token, startup, blocked)


def scheduled_seconds(root_pid: int) -> float | None:
    """Seconds every thread of the process tree spent on a CPU or waiting for one, from Linux's
    ``/proc/<pid>/task/<tid>/schedstat`` (None where there is none).

    Startup minus this is the time spent waiting off-CPU: on I/O, a lock, a sleep. On a shared VM the
    CPU part moves 10-40 % from launch to launch (it is the machine's speed, not the program's: the
    instruction count is exact) while the waiting part stays within a millisecond or two, so a
    regression that waits (a sleep, a lookup, a blocking read at import) shows there clearly."""
    total = 0
    try:
        processes = [psutil.Process(root_pid), *psutil.Process(root_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    for process in processes:
        tasks = Path(f"/proc/{process.pid}/task")
        try:
            for task in tasks.iterdir():
                on_cpu, run_queue, _ = (task / "schedstat").read_text().split()
                total += int(on_cpu) + int(run_queue)
        except (OSError, ValueError):
            if not tasks.parent.exists():
                continue  # exited meanwhile
            return None
    return total / 1e9


IDLE_SETTLE_S = 1.0
# What a desktop UI asks an idle backend: idle memory is measured after these are answered, so the
# code that serving needs is resident (a server that releases startup memory gets no free pass).
IDLE_POLL = ("/health", "/api/models", "/api/jobs")


def idle_memory(running: Running) -> TreeMemory:
    """The tree's memory once startup has settled and the UI's idle polling was answered."""
    time.sleep(IDLE_SETTLE_S)
    for path in IDLE_POLL:
        running.request("GET", path)
    return running.memory()


def first_training_step(running: Running, timeout: float = 600.0) -> tuple[float, TreeMemory]:
    """Seconds from ``POST /api/jobs`` to the first ``step`` event (the lazy import of torch /
    transformers / peft in the worker included), and the tree's memory at its peak while training: its
    PSS is the highest that a 10 ms sampler (:class:`PeakSampler`) saw, the other figures come from the
    full reads between polls."""
    with PeakSampler(running.popen.pid) as sampler:
        started = time.perf_counter()
        status, body = running.request("POST", "/api/jobs", {"model": "tiny-llama",
                                                             "dataset": "sample-instructions",
                                                             "max_steps": 3, "checkpoint_every": 0})
        if status != 202:
            raise LaunchError(f"job not accepted: {status} {body[:200]!r}")
        job_id = json.loads(body)["id"]
        first_step: float | None = None
        peak = running.memory()
        while time.perf_counter() - started < timeout:
            status, body = running.request("GET", f"/api/jobs/{job_id}")
            job = json.loads(body)
            if first_step is None and job["current_step"] >= 1:
                first_step = time.perf_counter() - started
            sample = running.memory()
            if sample.pss > peak.pss:
                peak = sample
            if job["status"] in ("completed", "failed", "cancelled", "interrupted"):
                if job["status"] != "completed" or first_step is None:
                    raise LaunchError(f"training job ended {job['status']}: {job.get('error')}")
                break
            time.sleep(0.05)
        else:
            raise LaunchError(f"training job did not finish within {timeout:.0f}s")
    return first_step, replace(peak, pss=max(peak.pss, sampler.peak))


def stop(running: Running, timeout: float = 10.0) -> float:
    """Graceful stop (SIGTERM to the launched process), then reap the whole tree; seconds to exit."""
    return stop_tree(running.popen, timeout=timeout).exit_seconds
