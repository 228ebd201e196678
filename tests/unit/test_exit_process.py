"""A stopped server exits at once, with its logs flushed, without the interpreter's teardown: a busy
thread cannot keep it alive, and nothing the teardown would run (atexit hooks) delays it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from backend_client.manager import REPO_ROOT

STUCK = """
import atexit, logging, sys, threading, time
logging.basicConfig(stream=sys.stderr)
from backend.main import exit_process
atexit.register(time.sleep, 30)  # what a library's teardown may do; never reached
threading.Thread(target=threading.Event().wait, name="stuck generation").start()
logging.getLogger("backend").warning("last words")
exit_process(3)
"""


def test_a_busy_thread_cannot_keep_the_process_alive_and_teardown_is_skipped() -> None:
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", STUCK], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: a busy thread or the teardown kept it alive")
    assert done.returncode == 3
    assert time.monotonic() - started < 10
    assert "busy threads left unfinished: stuck generation" in done.stderr
    assert "last words" in done.stderr, "the logs are flushed before the process ends"
