"""Data files declared once (``[[tool.compile.data]]``), rendered for Nuitka and PyInstaller, and
recorded in a manifest that ``compile verify`` checks inside the artifact."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from compile.errors import ConfigError, DataFileError
from compile.options import BuildOptions, DataSpec

MANIFEST_NAME = "data-manifest.json"
MANIFEST_SCHEMA = 1


@dataclass(frozen=True, order=True)
class DataFile:
    source: Path  # absolute
    destination: str  # posix path relative to the bundle root


def glob_base(pattern: str) -> PurePosixPath:
    """The leading wildcard-free folders of a glob: ``a/b/**/*.json`` → ``a/b``."""
    parts = []
    for part in PurePosixPath(pattern).parts:
        if any(char in part for char in "*?["):
            break
        parts.append(part)
    base = PurePosixPath(*parts) if parts else PurePosixPath(".")
    return base.parent if base == PurePosixPath(pattern) else base


def resolve_data(root: Path, specs: tuple[DataSpec, ...]) -> list[DataFile]:
    """Every file each glob matches; a glob matching nothing is an error naming it."""
    files: dict[str, DataFile] = {}
    for spec in specs:
        if PurePosixPath(spec.glob).is_absolute() or ".." in PurePosixPath(spec.glob).parts:
            raise DataFileError(f"data glob {spec.glob!r} must be relative to the project root, without '..'")
        base = glob_base(spec.glob)
        matched = sorted(path for path in root.glob(spec.glob) if path.is_file() and "__pycache__" not in path.parts)
        if not matched:
            raise DataFileError(
                f"data glob {spec.glob!r} matched no file under {root}",
                hint="fix the glob in [[tool.compile.data]] or create the files (python scripts/make_resources.py)",
            )
        for path in matched:
            relative = PurePosixPath(path.relative_to(root).as_posix()).relative_to(base)
            destination = str(PurePosixPath(spec.destination) / relative)
            files[destination] = DataFile(path.resolve(), destination)
    return sorted(files.values(), key=lambda item: item.destination)


def module_sources(names: tuple[str, ...], facts: Mapping[str, Any]) -> list[DataFile]:
    """The source file of each module in ``names`` (``anyio`` → ``anyio/__init__.py``), as a data file at
    the path a module's ``__file__`` points to in both tools' builds, for a package that reads its own
    source at run time (``inspect.getsource``). It comes from the build env's installed distributions."""
    found = []
    for name in names:
        path = "/".join(name.split("."))
        wanted = (f"{path}.py", f"{path}/__init__.py")
        hit = next(((info, text) for info in facts["distributions"].values() for text in info["files"]
                    if text in wanted), None)
        if hit is None:
            raise ConfigError(f"module-sources: {name!r} has no source file in the build env's distributions "
                              f"(looked for {' or '.join(wanted)})",
                              hint="name an installed, pure-Python module in module-sources in [tool.compile]")
        info, text = hit
        found.append(DataFile(Path(info["location"]) / text, text))
    return found


def nuitka_data_args(files: list[DataFile]) -> list[str]:
    return [f"--include-data-files={item.source}={item.destination}" for item in files]


def pyinstaller_data_args(files: list[DataFile], platform: str) -> list[str]:
    separator = ";" if platform == "windows" else ":"  # PyInstaller's os.pathsep of the target
    return [f"--add-data={item.source}{separator}{PurePosixPath(item.destination).parent}" for item in files]


def manifest(files: list[DataFile]) -> dict[str, object]:
    entries = []
    for item in files:
        data = item.source.read_bytes()
        entries.append({"path": item.destination, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return {"schema_version": MANIFEST_SCHEMA, "files": entries}


def load_manifest(path: Path) -> list[dict[str, object]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("schema_version") != MANIFEST_SCHEMA:
        raise DataFileError(f"{path}: unsupported manifest schema {document.get('schema_version')!r}")
    return list(document["files"])


def data_files_for(options: BuildOptions) -> list[DataFile]:
    return resolve_data(options.project_root, options.data)
