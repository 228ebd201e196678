"""Evict an artifact's files from the page cache without root (what ``vmtouch -e`` does), so the next
launch reads them from disk: a *cold* start."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.measure.size import artifact_files


def evict(paths: list[Path]) -> int:
    """``posix_fadvise(DONTNEED)`` on every file under ``paths``; returns how many files."""
    count = 0
    for root in paths:
        for file in artifact_files(root) if root.exists() else []:
            try:
                fd = os.open(file, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count
