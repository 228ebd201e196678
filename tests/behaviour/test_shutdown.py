"""Every way the backend stops (docs/user-guide/protocol.md, section 4), with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend_client import checks
from backend_client.process_tree import pid_alive
from tests.support import RunningBackends, wait_for
from tests.support.jobs_api import create_job, job, wait_steps, worker_pid

WORKER_EXIT_AFTER_SERVER_DEATH_S = 0.5  # the protocol's promise


def test_post_shutdown(backends: RunningBackends) -> None:
    _, server = backends.start()
    assert "exited 0" in checks.shutdown(server)


def test_sigint_like_ctrl_c(backends: RunningBackends) -> None:
    _, server = backends.start()
    tree = server.process_tree()
    server.popen.send_signal(signal.SIGINT)
    assert server.popen.wait(10) == 0
    wait_for(lambda: not any(pid_alive(p.pid) for p in tree), 5, what="every process of the tree to exit")


def test_sigterm_while_training_stops_within_two_seconds_with_a_checkpoint(backends: RunningBackends,
                                                                            tmp_path: Path) -> None:
    data_dir = tmp_path / "sigterm-data"
    _, server = backends.start(data_dir)
    created = create_job(server, max_steps=100_000, checkpoint_every=0)
    wait_steps(server, created["id"], 3)
    tree = server.process_tree()
    started = time.perf_counter()
    server.popen.send_signal(signal.SIGTERM)
    assert server.popen.wait(10) == 0
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"graceful shutdown took {elapsed:.2f}s"
    wait_for(lambda: not any(pid_alive(p.pid) for p in tree), 3, what="every process of the tree to exit")

    _, again = backends.start(data_dir)
    state = job(again, created["id"])
    assert state["status"] == "interrupted"
    assert state["checkpoint_step"] and state["checkpoint_step"] >= 3, "shutdown saved a checkpoint"


def test_parent_death_stops_backend(backends: RunningBackends, tmp_path: Path) -> None:
    """``--parent-pid``: when the desktop app dies, the backend exits (and takes its worker along)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _, server = backends.start(extra_args=("--parent-pid", str(parent.pid)))
        tree = server.process_tree()
        parent.kill()
        parent.wait()
        assert server.popen.wait(10) == 0
        wait_for(lambda: not any(pid_alive(p.pid) for p in tree), 5, what="every process of the tree to exit")
    finally:
        parent.kill()


def test_worker_exits_when_the_server_is_killed(backends: RunningBackends) -> None:
    _, server = backends.start()
    created = create_job(server, max_steps=100_000, checkpoint_every=0)
    wait_steps(server, created["id"], 2)
    worker = worker_pid(server, created["id"])
    os.kill(server.server_pid, signal.SIGKILL)
    killed = time.perf_counter()
    while pid_alive(worker) and time.perf_counter() - killed < 10:
        time.sleep(0.005)
    took = time.perf_counter() - killed
    assert not pid_alive(worker), "the worker outlived its server"
    assert took < WORKER_EXIT_AFTER_SERVER_DEATH_S, f"the worker took {took:.2f}s to notice its server died"


def test_stop_reaps_a_tree_that_ignores_the_request(backends: RunningBackends) -> None:
    """The service manager's last resort: a backend that does not exit is terminated, then killed."""
    _, server = backends.start()
    os.kill(server.server_pid, signal.SIGSTOP)  # a hung server: it cannot answer or exit
    try:
        report = server.stop(timeout=1)
    finally:
        if pid_alive(server.server_pid):
            os.kill(server.server_pid, signal.SIGKILL)
    assert not report.graceful
    assert not report.leftover_pids
