"""Every first-use path from a fresh server: the scenarios ``compile verify`` runs, plus registering a
model first. A build where a path only works after another request prepared it fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backend.runtime_paths import current_layout
from backend_client import checks
from tests.support import TINY_MODEL, RunningBackends, Target

SCENARIOS = [scenario.title for scenario in checks.first_use_scenarios("any")]


@pytest.mark.parametrize("title", SCENARIOS)
def test_first_use(title: str, backends: RunningBackends, target: Target, tmp_path: Path) -> None:
    """Each scenario on its own: what it needs is prepared by a server of its own, which stops first."""
    scenario = next(s for s in target.scenarios() if s.title == title)
    for named_checks in (scenario.prepare, scenario.checks):
        if not named_checks:
            continue
        _, server = backends.start(tmp_path / scenario.data_dir)
        checks.ready_line(server, target.variant.name)
        for _, check in named_checks:
            check(server)
        checks.shutdown(server)


def test_register_a_model_first_then_generate_from_it(backends: RunningBackends, tmp_path: Path) -> None:
    folder = tmp_path / "registered"
    shutil.copytree(current_layout().resources / "models" / TINY_MODEL, folder)
    _, server = backends.start()
    checks.register_model(server, name="registered", folder=folder)
    checks.generate(server, model="registered")
    checks.shutdown(server)
