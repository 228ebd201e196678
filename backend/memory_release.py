"""Give back what only startup needed, once the server is ready (Linux; elsewhere a no-op).

Startup touches far more memory than serving does. Importing the web stack runs every module body once,
and a Nuitka binary decodes each compiled module's constants from its blob, so most of the binary's
code and read-only data ends up mapped (measured: 15.3 of a 16.6 MiB binary, now that the bytecode of
the modules Nuitka does not compile is read from a file beside it), with the kernel mapping 64 KiB
around each page that is actually touched. Those pages are clean copies of the file: the
kernel may drop them from any process at any time and fault them back in on the next access, and
that is all this does, deliberately, once.

- *Clean file pages*: every private, read-only mapping of a regular file whose pages are all still the
  file's (``Anonymous: 0 kB``, so nothing relocated or written) is released with
  ``madvise(MADV_DONTNEED)``. The pages stay in the page cache; what serving touches again comes back
  as a minor fault, without I/O. Writable mappings and anything holding private data are never
  touched.
- *Free heap*: ``malloc_trim(0)`` (glibc) returns free heap pages that import-time garbage left.

It runs the same way from source, in a Nuitka build and in a PyInstaller build, so the benchmarks
compare like with like; ``PEFT_ENGINE_RELEASE_STARTUP_MEMORY=0`` turns it off to measure the difference.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux, every architecture
SWITCH_ENV = "PEFT_ENGINE_RELEASE_STARTUP_MEMORY"  # the setting ``release_startup_memory``; "0" turns it off


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kib: int
    anonymous_kib: int
    locked_kib: int

    @property
    def releasable(self) -> bool:
        """Private, read-only, backed by a file, and holding no page of its own (a relocated or written
        page is ``Anonymous``): dropping such pages loses nothing."""
        return (
            self.perms[0] == "r" and self.perms[1] == "-" and self.perms[3] == "p"
            and self.path.startswith("/") and not self.path.startswith(("/dev/", "/memfd:"))
            and self.rss_kib > 0 and self.anonymous_kib == 0 and self.locked_kib == 0
        )


@dataclass(frozen=True)
class Released:
    mappings: int
    file_kib: int  # resident in the released mappings before release
    rss_before_kib: int
    rss_after_kib: int
    seconds: float


_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)$", re.M)
_FIELD = re.compile(r"^(Rss|Anonymous|Locked): +(\d+) kB$", re.M)


def parse_smaps(text: str) -> Iterator[Mapping]:
    """The mappings of a ``/proc/<pid>/smaps`` text (only the fields used here)."""
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        fields = {match[1]: int(match[2]) for match in _FIELD.finditer(text, header.end(), end)}
        yield Mapping(int(header[1], 16), int(header[2], 16), header[3], header[4].rstrip("\n"),
                      fields.get("Rss", 0), fields.get("Anonymous", 0), fields.get("Locked", 0))


def resident_kib(mappings: Iterable[Mapping]) -> int:
    return sum(mapping.rss_kib for mapping in mappings)


def release(
    mappings: Iterable[Mapping], madvise: Callable[[int, int, int], int]
) -> tuple[int, int]:
    """``madvise(MADV_DONTNEED)`` each releasable mapping; returns (mappings released, KiB they held)."""
    count = kib = 0
    for mapping in mappings:
        if mapping.releasable and madvise(mapping.start, mapping.end - mapping.start, MADV_DONTNEED) == 0:
            count += 1
            kib += mapping.rss_kib
    return count, kib


def _libc_functions() -> tuple[Callable[[int, int, int], int], Callable[[], None]] | None:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise_c = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise_c.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise_c.restype = ctypes.c_int
    malloc_trim_c = getattr(libc, "malloc_trim", None)  # glibc only (not musl)

    def madvise(start: int, length: int, advice: int) -> int:
        return int(madvise_c(start, length, advice))

    def trim_heap() -> None:
        if malloc_trim_c is not None:
            malloc_trim_c(0)

    return madvise, trim_heap


last_release: Released | None = None  # what this process released at startup, for /api/system/process


def release_startup_memory(smaps: Path = Path("/proc/self/smaps")) -> Released | None:
    """Release clean file pages and free heap of this process; ``None`` where that is not possible."""
    global last_release
    if not sys.platform.startswith("linux"):
        return None
    started = time.perf_counter()
    functions = _libc_functions()
    try:
        before = smaps.read_text()
    except OSError:
        return None
    if functions is None:
        return None
    madvise, trim_heap = functions
    trim_heap()
    mappings = list(parse_smaps(before))
    count, kib = release(mappings, madvise)
    try:
        rollup = (smaps.parent / "smaps_rollup").read_text()
        after = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Rss:"))
    except (OSError, StopIteration, ValueError, IndexError):
        after = 0
    result = Released(count, kib, resident_kib(mappings), after, time.perf_counter() - started)
    last_release = result
    log.debug("released %d KiB of clean file pages in %d mappings; RSS %d -> %d KiB in %.1f ms",
              result.file_kib, result.mappings, result.rss_before_kib, result.rss_after_kib, result.seconds * 1e3)
    return result
