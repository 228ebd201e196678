"""The variants a run measures: ``source`` plus whatever ``python -m compile`` built under ``dist/``.

A variant that is not built is reported as missing, with the command that builds it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIANTS = ("source", "nuitka-standalone", "nuitka-onefile", "pyinstaller-onefile", "pyinstaller-onedir")
BASELINE = "pyinstaller-onefile"
BUILD_COMMANDS = {
    "nuitka-standalone": "python -m compile standalone",
    "nuitka-onefile": "python -m compile onefile",
    "pyinstaller-onefile": "python -m compile pyinstaller --onefile",
    "pyinstaller-onedir": "python -m compile pyinstaller --onedir",
}


@dataclass(frozen=True)
class Variant:
    name: str
    command: tuple[str, ...]
    cwd: Path | None
    files: tuple[Path, ...]  # evicted for a cold start; summed for size
    size_root: Path | None  # what "size" measures (None for source)
    build: dict[str, Any] = field(default_factory=dict)

    @property
    def onefile(self) -> bool:
        return self.name.endswith("onefile")


def discover(root: Path, names: tuple[str, ...] = VARIANTS) -> tuple[list[Variant], dict[str, str]]:
    """(present variants, missing name → how to build it)."""
    present, missing = [], {}
    for name in names:
        if name == "source":
            site = Path(sys.prefix) / "lib"
            present.append(Variant(name, (sys.executable, "-m", "backend"), root, (root / "backend", site), None))
            continue
        record_path = root / "dist" / name / "build.json"
        if not record_path.is_file():
            missing[name] = BUILD_COMMANDS.get(name, "unknown variant")
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        executable = root / "dist" / name / record["executable"]
        artifact = executable if name.endswith("onefile") else executable.parent
        present.append(Variant(name, (str(executable),), None, (artifact,), artifact, record))
    return present, missing
