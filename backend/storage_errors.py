"""A full disk, wherever it surfaces (a file write, SQLite), becomes one clear 507 answer."""

from __future__ import annotations

import errno
import os
import sqlite3

from backend.errors import InsufficientStorage

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Libraries with native code report the OS error in their own exception type, by its text only:
# safetensors says "I/O error: No space left on device (os error 28)".
DISK_FULL_TEXTS = tuple(os.strerror(number) for number in sorted(DISK_FULL_ERRNOS))
ADVICE = "free some space there, then retry; nothing was changed"


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or the user's quota is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.OperationalError) and "disk is full" in str(current):
            return True
        if any(text in str(current) for text in DISK_FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def as_insufficient_storage(exc: BaseException, data_dir: object) -> InsufficientStorage | None:
    if not disk_full(exc):
        return None
    return InsufficientStorage(f"the disk holding the data dir {data_dir} is full: {ADVICE}")
