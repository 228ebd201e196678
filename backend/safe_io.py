"""Every file the server reads or writes on a client's behalf goes through here.

Two rules, each in one place:

- **Bounded reads.** Only regular files are opened (a FIFO, a device or a socket is refused before it
  can block a thread or stream forever); a file is read up to a stated limit, and hashed in fixed-size
  chunks, so no request can make the server hold more than the limit in memory.
- **Confined paths.** A path made under the data dir (:func:`confined`) is checked component by
  component before the first byte is written or read: none may be a symbolic link, and none may lead
  outside. A link planted anywhere on the way (a job, adapter, dataset, model or checkpoint folder) is
  refused, so neither the server nor a training worker ever follows one out of the data dir.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from backend.errors import InvalidInput, PayloadTooLarge

CHUNK = 1 << 20


class NotARegularFile(InvalidInput):
    """A FIFO, device, socket or folder where a file was expected."""


class UnsafePath(InvalidInput):
    """A path under the data dir that is, or passes through, a symbolic link."""

    code = "unsafe_path"


def regular_file_size(path: Path) -> int:
    """The size of ``path`` if it is a regular file (links followed); NotARegularFile otherwise.
    OSError (missing, no permission) propagates."""
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise NotARegularFile(f"{path.name!r} is not a regular file")
    return status.st_size


def _open_regular(path: Path) -> int:
    """A descriptor of ``path``, proven a regular file after opening. ``O_NONBLOCK``: a FIFO swapped in
    after any earlier check opens at once instead of blocking this thread, and is then refused."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotARegularFile(f"{path.name!r} is not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_bounded(path: Path, limit: int, what: str = "file") -> bytes:
    """The whole of a regular file of at most ``limit`` bytes; PayloadTooLarge if it is larger (the
    rest is never read)."""
    descriptor = _open_regular(path)
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the {what} {path.name!r} is larger than {limit} bytes")
    return data


def hash_file(path: Path, limit: int | None = None) -> tuple[int, str]:
    """(bytes, sha256) of a regular file, read in fixed-size chunks; PayloadTooLarge beyond ``limit``."""
    digest, size = hashlib.sha256(), 0
    descriptor = _open_regular(path)
    with os.fdopen(descriptor, "rb") as handle:
        while block := handle.read(CHUNK):
            size += len(block)
            if limit is not None and size > limit:
                raise PayloadTooLarge(f"{path.name!r} is larger than {limit} bytes")
            digest.update(block)
    return size, digest.hexdigest()


def confined(base: Path, *parts: str, field: str = "name") -> Path:
    """``base / parts...``, proven to stay inside ``base`` with no symbolic link on the way. ``base`` is
    the data dir or a folder in it, resolved when the server started; each part is a single name
    (checked by the caller). Components that do not exist yet are fine: they are about to be created."""
    current = base
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise UnsafePath(f"invalid {field} {part!r}", field=field)
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{current.relative_to(base).as_posix()!r} in the data dir is a symbolic link; "
                             "peft-engine never follows one out of its data dir: remove the link", field=field)
    return current


def check_tree_unlinked(base: Path, folder: Path) -> None:
    """Refuse ``folder`` (inside ``base``) if it, a folder above it up to ``base``, or anything inside it
    is a symbolic link: what a worker is about to read or replace must be the data dir's own."""
    relative = folder.relative_to(base)
    confined(base, *relative.parts)
    if folder.is_dir():
        for root, dirs, files in os.walk(folder):
            for name in (*dirs, *files):
                if os.path.islink(os.path.join(root, name)):
                    link = Path(root, name).relative_to(base).as_posix()
                    raise UnsafePath(f"{link!r} in the data dir is a symbolic link; remove it")
