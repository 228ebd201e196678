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

    @property
    def kind(self) -> str:
        """The variant without a checkout label: ``base/nuitka-onefile`` → ``nuitka-onefile``."""
        return self.name.rsplit("/", 1)[-1]


def discover(
    root: Path, names: tuple[str, ...] = VARIANTS, dist_dir: Path | None = None, label: str | None = None
) -> tuple[list[Variant], dict[str, str]]:
    """(present variants, missing name → how to build it). With ``label``, the variants of another
    checkout's ``dist_dir`` are named ``label/<variant>`` (a pull request's base, measured beside head)."""
    present, missing = [], {}
    dist = dist_dir or root / "dist"
    for name in names:
        shown = f"{label}/{name}" if label else name
        if name == "source":
            if label:
                continue  # source is this checkout's; another checkout is compared through its builds
            site = Path(sys.prefix) / "lib"
            present.append(Variant(name, (sys.executable, "-m", "backend"), root, (root / "backend", site), None))
            continue
        record_path = dist / name / "build.json"
        if not record_path.is_file():
            missing[shown] = BUILD_COMMANDS.get(name, "unknown variant")
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        executable = dist / name / record["executable"]
        artifact = executable if name.endswith("onefile") else executable.parent
        present.append(Variant(shown, (str(executable),), None, (artifact,), artifact, record))
    return present, missing
