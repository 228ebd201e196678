"""A server's children end before it does: ``stop_children`` closes multiprocessing's resource tracker's
pipe and waits for it (the CI run on record found the tracker alive just after the server's exit)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing import resource_tracker

import psutil
import pytest

from backend.services.lifecycle import stop_children


@pytest.mark.skipif(sys.platform == "win32", reason="the resource tracker is POSIX only")
def test_the_resource_tracker_has_ended_when_stop_children_returns() -> None:
    resource_tracker.ensure_running()
    tracker_pid = getattr(resource_tracker._resource_tracker, "_pid", None)
    assert tracker_pid is not None and psutil.pid_exists(tracker_pid)
    assert stop_children(timeout_s=10) == []
    assert not psutil.pid_exists(tracker_pid), "the tracker outlived stop_children"


def test_a_child_that_does_not_end_is_reported_not_killed() -> None:
    context = multiprocessing.get_context("spawn")
    stuck = context.Process(target=os.system, args=("sleep 30",), daemon=True)
    stuck.start()
    try:
        left = stop_children(timeout_s=0.2)  # the tracker too: the child holds its pipe open
        assert stuck.pid in left and stuck.is_alive()
    finally:
        stuck.kill()
        stuck.join(5)
