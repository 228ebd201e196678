"""What the tests share: the variant under test, real backends started through the service manager (each
stopped at the end with nothing left behind), and small helpers. Fixtures live in ``tests/conftest.py``;
this module holds no fixture, so any test or script may import it."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.variants import NUITKA_STANDALONE, Variant
from backend_client import checks
from backend_client.manager import REPO_ROOT, BackendProcess, LaunchSpec, ServiceManager
from backend_client.process_tree import StopReport

TINY_MODEL = "tiny-llama"
SAMPLE_DATASET = "sample-instructions"


@dataclass(frozen=True)
class Target:
    """The variant the behaviour suite runs against: source, or a built artifact."""

    variant: Variant
    executable: Path | None = None  # None for source

    @property
    def root(self) -> Path | None:
        """What the user gets: the onefile, or the folder holding the executable (None for source)."""
        if self.executable is None:
            return None
        return self.executable if self.variant.onefile else self.executable.parent

    def spec(self, data_dir: Path | None, **kwargs: Any) -> LaunchSpec:
        if self.executable is None:
            return LaunchSpec.source(data_dir, **kwargs)  # type: ignore[arg-type]
        return LaunchSpec.artifact(self.executable, data_dir, **kwargs)

    def scenarios(self) -> list[checks.Scenario]:
        """The first-use scenarios of ``compile verify`` for this variant: with its declared data files
        (from the build's manifest, or for source from ``[[tool.compile.data]]``)."""
        from compile.datafiles import MANIFEST_NAME, data_files_for, load_manifest, manifest
        from compile.options import current_platform, resolve_options

        if self.executable is None:
            options = resolve_options(project_root=REPO_ROOT, platform=current_platform(),
                                      variant=NUITKA_STANDALONE.name, environ={})
            entries = list(manifest(data_files_for(options))["files"])  # type: ignore[call-overload]
        else:
            from compile.artifacts import locate

            entries = load_manifest(locate(self.executable).folder / MANIFEST_NAME)
        return checks.first_use_scenarios(self.variant.name, manifest=entries, sidecar=self.variant.tool == "nuitka",
                                          onefile=self.variant.onefile)

    def command(self, executable: Path | None = None) -> list[str]:
        """The argv that starts this variant (optionally a copy of its executable placed elsewhere)."""
        if self.executable is None:
            import sys

            return [sys.executable, "-m", "backend"]
        return [str(executable or self.executable)]


class RunningBackends:
    """Starts backends of the target variant and guarantees each is stopped with nothing left behind."""

    def __init__(self, tmp_path: Path, target: Target):
        self.tmp_path = tmp_path
        self.target = target
        self.managers: list[ServiceManager] = []
        self.stop_reports: list[StopReport] = []

    def start(self, data_dir: Path | None = None, *, executable: Path | None = None, default_data_dir: bool = False,
              prefix: tuple[str, ...] = (), **kwargs: Any) -> tuple[ServiceManager, BackendProcess]:
        """Start one backend (``executable``: a copy of the artifact placed elsewhere; ``default_data_dir``:
        pass no --data-dir, so the backend picks its per-user default under HOME; ``prefix``: a command
        that runs it, such as ``setpriv`` to run it as another user)."""
        spec_fields = {key: kwargs.pop(key) for key in ("env", "extra_args", "cwd") if key in kwargs}
        chosen = None if default_data_dir else data_dir or self.tmp_path / "data"
        if executable is not None:
            spec = LaunchSpec.artifact(executable, chosen, **spec_fields)
        else:
            spec = self.target.spec(chosen, **spec_fields)
        if prefix:
            spec = dataclasses.replace(spec, command=(*prefix, *spec.command))
        manager = ServiceManager(spec, **{"max_restarts": 0, **kwargs})
        process = manager.start()
        self.managers.append(manager)
        return manager, process

    def close(self) -> None:
        for manager in self.managers:
            report = manager.stop()
            if report is not None:
                self.stop_reports.append(report)
                assert not report.leftover_pids, f"processes left behind: {report.leftover_pids}"


def fresh_home(home: Path) -> dict[str, str | None]:
    """Environment changes for a user whose HOME is ``home`` and who set no XDG folders (a fresh
    account); None removes a variable (see ``LaunchSpec.env``)."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_DATA_HOME": None, "XDG_CACHE_HOME": None, "XDG_CONFIG_HOME": None,
            "XDG_STATE_HOME": None, "PEFT_ENGINE_DATA_DIR": None}


def environment_with(changes: dict[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
