"""The data dir: one owner at a time, its folders, and what a crashed run left behind.

- **One owner.** A server takes an OS-level lock on ``<data dir>/.lock`` before it touches anything
  (:func:`claim`): ``flock`` on POSIX, ``msvcrt.locking`` on Windows. The OS releases it when the
  process ends, however it ends (``kill -9`` included), so a stale lock never blocks the next start. A
  second server on the same data dir (the app opened twice) gets :class:`DataDirInUse`, naming the
  owner's pid, and exits before it reads or writes a job.
- **Confined paths.** :meth:`DataDir.path` is the only way the services make a path in the data dir:
  each component is checked by :func:`backend.safe_io.confined` (no symbolic link, nothing outside).
- **Nothing left behind.** :meth:`DataDir.sweep` removes the temporary files and folders that only a
  crashed run leaves (an upload cut by ``kill -9``, a merge or adapter half written), with a log line each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.safe_io import confined

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
FOLDERS = ("datasets", "adapters", "models", "jobs")
# (folder, glob) of what only an interrupted write leaves: uploads, merges, adapters, checkpoints
LEFTOVERS = (("datasets", ".upload-*.tmp"), ("models", "*.tmp"), ("adapters", "*.tmp"), ("jobs", "*/checkpoint.tmp"))
_LOCK_OFFSET = 1 << 20  # Windows locks a byte range; the pid at offset 0 stays readable


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, owner: str):
        self.data_dir, self.owner = data_dir, owner
        super().__init__(
            f"the data dir {data_dir} is in use by another peft-engine server ({owner}); one data dir has one "
            "server: stop that one, talk to it instead, or start this one with another --data-dir")


@dataclass
class OwnerLock:
    path: Path
    handle: IO[str]

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()


def _try_lock(handle: IO[str]) -> bool:
    if os.name == "nt":
        import msvcrt

        handle.seek(_LOCK_OFFSET)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # Windows only
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def claim(data_dir: Path) -> OwnerLock:
    """Become the data dir's one owner for this process's life, or raise :class:`DataDirInUse`."""
    path = data_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115  # held open for the process's life
    if not _try_lock(handle):
        handle.seek(0)
        text = handle.read(64).strip()
        handle.close()
        raise DataDirInUse(data_dir, f"pid {text}" if text.isdigit() else "pid unknown")
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return OwnerLock(path, handle)


class DataDir:
    """The resolved data dir and the folders in it."""

    def __init__(self, root: Path):
        self.root = root
        for name in FOLDERS:
            confined(root, name).mkdir(exist_ok=True)

    def path(self, *parts: str, field: str = "name") -> Path:
        return confined(self.root, *parts, field=field)

    def folder(self, name: str) -> Path:
        return confined(self.root, name)

    def sweep(self) -> list[Path]:
        """Remove what only an interrupted write leaves; returns what was removed."""
        removed = []
        for folder, pattern in LEFTOVERS:
            base = self.folder(folder)
            for path in sorted(base.glob(pattern)):
                if path.is_symlink() or path.is_file():
                    path.unlink(missing_ok=True)
                else:
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
                log.info("removed %s, left by an interrupted run", path.relative_to(self.root))
        return removed
