"""Shared fixtures: a real backend started through the service manager, in a temporary data dir."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.service_manager import BackendProcess, LaunchSpec, ServiceManager, StopReport

TINY_MODEL = "tiny-llama"
SAMPLE_DATASET = "sample-instructions"


class RunningBackends:
    """Starts source backends and guarantees each is stopped with nothing left behind."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.managers: list[ServiceManager] = []
        self.stop_reports: list[StopReport] = []

    def start(self, data_dir: Path | None = None, **manager_kwargs: Any) -> tuple[ServiceManager, BackendProcess]:
        spec = LaunchSpec.source(data_dir or self.tmp_path / "data")
        manager = ServiceManager(spec, **{"max_restarts": 0, **manager_kwargs})
        process = manager.start()
        self.managers.append(manager)
        return manager, process

    def close(self) -> None:
        for manager in self.managers:
            report = manager.stop()
            if report is not None:
                self.stop_reports.append(report)
                assert not report.leftover_pids, f"processes left behind: {report.leftover_pids}"


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[RunningBackends]:
    running = RunningBackends(tmp_path)
    try:
        yield running
    finally:
        running.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
