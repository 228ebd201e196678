"""Size of an artifact: bytes on disk (folder sum) and compressed (zlib over every file, in a stable
order: roughly what a zip download of it weighs)."""

from __future__ import annotations

import zlib
from pathlib import Path


def artifact_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in artifact_files(path))


def compressed_bytes(path: Path, level: int = 6) -> int:
    total = 0
    for file in artifact_files(path):
        compressor = zlib.compressobj(level)
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                total += len(compressor.compress(block))
        total += len(compressor.flush())
    return total
