"""Command-line planners for the two tools: pure functions of options and computed inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compile.datafiles import DataFile
from compile.sidecar import SidecarPlan


@dataclass(frozen=True, kw_only=True)
class BuildInputs:
    """What the planners need besides the options, computed from the build environment."""

    python: str  # the build environment's interpreter
    data_files: tuple[DataFile, ...]
    sidecar: SidecarPlan | None = None
    sidecar_dir: Path | None = None  # staged, byte-compiled sidecar folder
    stdlib_modules: tuple[str, ...] = ()
    # what the build is made of, hashed (compile.plan.build_id): a onefile's unpack folder is keyed by it
    build_id: str = "0" * 12
