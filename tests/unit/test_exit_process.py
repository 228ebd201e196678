"""A stopped server exits even when a thread is still busy (a generation nothing can interrupt)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from backend_client.manager import REPO_ROOT

STUCK = """
import threading, time
from backend.main import exit_process
threading.Thread(target=threading.Event().wait, name="stuck generation").start()
threading.Thread(target=time.sleep, args=(0.2,), name="finishing").start()
exit_process(3)
"""
FINISHING = """
import threading, time, pathlib, sys
from backend.main import exit_process
def work():
    time.sleep(0.2)
    pathlib.Path(sys.argv[1]).write_text("done")
threading.Thread(target=work, name="finishing").start()
exit_process(0)
"""


def test_a_busy_thread_cannot_keep_the_process_alive() -> None:
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", STUCK], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: a busy non-daemon thread kept it alive")
    assert done.returncode == 3
    assert time.monotonic() - started < 10
    assert "busy threads left unfinished: stuck generation" in done.stderr


def test_a_thread_that_finishes_within_the_grace_is_waited_for(tmp_path) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", FINISHING, str(marker)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0 and marker.read_text() == "done"
    assert "unfinished" not in done.stderr
