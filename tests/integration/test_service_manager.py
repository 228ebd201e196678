"""The service manager itself (the client library, not the backend): restart with backoff, give up."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backend_client.manager import LaunchSpec, ServiceManager

pytestmark = pytest.mark.integration


def test_service_manager_restarts_a_crashed_backend(tmp_path: Path) -> None:
    events: list[str] = []
    manager = ServiceManager(LaunchSpec.source(tmp_path / "data"), max_restarts=2, backoff_initial_s=0.1,
                             on_event=lambda kind, data: events.append(kind))
    first = manager.start()
    try:
        os.kill(first.popen.pid, signal.SIGKILL)
        second = manager.wait_for_restart(first, timeout=60)
        assert second.ready is not None and first.ready is not None and second.ready.pid != first.ready.pid
        assert second.request("GET", "/health", auth=False).status == 200
        assert events[:3] == ["ready", "exited", "restarting"]
    finally:
        report = manager.stop()
    assert report is not None and report.graceful and not report.leftover_pids


def test_service_manager_gives_up_after_its_restarts(tmp_path: Path) -> None:
    events: list[str] = []
    manager = ServiceManager(LaunchSpec.source(tmp_path / "data"), max_restarts=1, backoff_initial_s=0.05,
                             on_event=lambda kind, data: events.append(kind))
    first = manager.start()
    try:
        os.kill(first.popen.pid, signal.SIGKILL)
        second = manager.wait_for_restart(first, timeout=60)
        os.kill(second.popen.pid, signal.SIGKILL)
        assert manager.gave_up.wait(30)
        assert events.count("restarting") == 1 and events[-1] == "gave_up"
    finally:
        manager.stop()
