"""A small real file system to fill (a tmpfs mount; needs root, which CI has): the one full-disk helper of
the behaviour suite and ``scripts/fault_trials.py``."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_disk(mib: int) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="peft-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "peft-full", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def fill(disk: Path) -> Path:
    """Write zeros until the disk is full; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    return filler
