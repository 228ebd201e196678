"""Build records (``build.json``, versioned) and checksums, written atomically next to each artifact."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

BUILD_SCHEMA_VERSION = 1
BUILD_RECORD = "build.json"
CHECKSUMS = "SHA256SUMS"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True, default=str)
            stream.write("\n")
        os.chmod(temp, 0o644)  # mkstemp makes it private; records ship with the artifact
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def write_checksums(folder: Path, artifact: Path) -> Path:
    """``SHA256SUMS`` for every file of the artifact (a folder's files, or the one onefile)."""
    files = sorted(p for p in artifact.rglob("*") if p.is_file()) if artifact.is_dir() else [artifact]
    lines = [f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}" for path in files]
    target = folder / CHECKSUMS
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def git_commit(root: Path) -> str | None:
    """The checked-out commit, recorded in build and benchmark results (None outside a git checkout)."""
    from compile.runner import query

    answer = query(["git", "rev-parse", "HEAD"], cwd=root, timeout=10)
    return (answer.stdout.strip() or None) if answer is not None and answer.returncode == 0 else None


def load_build_record(path: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    version = record.get("schema_version")
    if version != BUILD_SCHEMA_VERSION:
        raise ValueError(f"{path}: build record schema {version!r}, this tool reads {BUILD_SCHEMA_VERSION}")
    return record
