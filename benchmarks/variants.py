"""What a run measures: ``source`` plus whatever ``python -m compile`` built under ``dist/`` (the variants
of :mod:`backend.variants`), optionally also another checkout's builds under a label.

A variant that is not built is reported as missing, with the command that builds it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.variants import NAMES, PYINSTALLER_ONEFILE, SOURCE, Variant, variant_named
from compile.artifacts import discover as discover_artifacts

# Reports show each variant's ratio to this one, measured in the same run.
REFERENCE = PYINSTALLER_ONEFILE.name


@dataclass(frozen=True)
class Measured:
    """One variant as a run launches and sizes it; ``name`` carries a checkout label (``base/...``)."""

    name: str
    variant: Variant
    command: tuple[str, ...]
    cwd: Path | None
    files: tuple[Path, ...]  # evicted for a cold start
    size_root: Path | None  # what "size" measures (None for source)
    build: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The variant without a checkout label: ``base/nuitka-onefile`` → ``nuitka-onefile``."""
        return self.variant.name


def discover(
    root: Path, names: tuple[str, ...] = NAMES, dist_dir: Path | None = None, label: str | None = None
) -> tuple[list[Measured], dict[str, str]]:
    """(present variants, missing name → how to build it) of the checkout at ``root``: its source and
    its builds under ``dist_dir`` (default ``root/dist``). With ``label``, every variant is named
    ``label/<variant>`` (a pull request's base, measured beside head); a ``root`` that is not a checkout
    (no ``backend/``) contributes its builds only."""
    wanted = tuple(variant_named(name) for name in names)
    present: list[Measured] = []
    prefix = f"{label}/" if label else ""
    if SOURCE in wanted and (root / "backend" / "__init__.py").is_file():
        site = Path(sys.prefix) / "lib"
        present.append(Measured(prefix + SOURCE.name, SOURCE, (sys.executable, "-m", "backend"), root,
                                (root / "backend", site), None))
    artifacts, missing = discover_artifacts(dist_dir or root / "dist", wanted)
    for artifact in artifacts:
        present.append(Measured(prefix + artifact.variant.name, artifact.variant, (str(artifact.executable),), None,
                                (artifact.root,), artifact.root, artifact.record))
    return present, {prefix + name: command for name, command in missing.items()}


def checkout_or_dist(path: Path) -> tuple[Path, Path]:
    """``--also LABEL=PATH``: PATH is another checkout (its source and its ``dist/``) or a ``dist`` folder."""
    path = path.resolve()
    if (path / "backend" / "__init__.py").is_file():
        return path, path / "dist"
    return path.parent, path
