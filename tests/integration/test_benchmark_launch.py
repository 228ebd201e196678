"""The benchmarks' launcher against the real backend from source: it starts, reports its startup and
memory, and stops (a real server: the integration tier)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_startup_of_the_real_source_backend(tmp_path: Path) -> None:
    from backend_client.manager import REPO_ROOT
    from benchmarks.measure.launch import launch, stop

    running = launch((sys.executable, "-m", "backend"), cwd=REPO_ROOT, data_dir=tmp_path)
    try:
        assert 0.05 < running.startup_s < 30
        assert running.memory().pss > 10 * 1024**2
    finally:
        assert stop(running) < 5
