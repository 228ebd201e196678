"""Symbol tables out of the sidecar's shared libraries: bytes that no code path reads.

torch's wheel ships ``libtorch_cpu.so`` with its full symbol table (``.symtab`` and ``.strtab``: 89 MB of
a 434 MB file). Neither the dynamic loader nor torch reads it: dynamic linking and ``dladdr`` (torch's
backtraces) use ``.dynsym``, which stripping keeps; the table is not even in a loaded segment, so it
costs disk and download size, never memory.

Planning is pure (:func:`strip_plan`, per platform):

- **linux**: ``strip --strip-unneeded`` (GNU binutils, installed with gcc), what distributions do to the
  shared libraries they package; only ELF files that still hold a ``.symtab`` are passed to it. Each is
  stripped into a new file that replaces the original only if its loadable segments still satisfy the
  ELF rule (offset and address congruent modulo the alignment): strip rewrites the layout of a library
  that patchelf modified (auditwheel's vendored ``*.libs``, numpy's OpenBLAS) and can break that rule,
  and the loader then refuses it ("ELF load command address/offset not page-aligned";
  pypa/auditwheel#716, NixOS/patchelf#10). Such a library ships as it was;
- **macos**: not done. Changing a Mach-O file invalidates its code signature, which arm64 requires on
  every library (the wheels ship them signed), so each one would have to be signed again;
- **windows**: nothing to do: a PE DLL carries no symbol table (debug information lives in ``.pdb``
  files, which wheels do not ship).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compile.errors import BuildFailed, MissingToolError

SHT_SYMTAB = 2
PT_LOAD = 1
MIN_PAGE = 4096


@dataclass(frozen=True)
class StripPlan:
    command: tuple[str, ...]  # the tool and its flags; the files follow
    skipped: str = ""  # why nothing is stripped on this platform ("" when command is set)


def strip_plan(platform: str, enabled: bool = True) -> StripPlan:
    if not enabled:
        return StripPlan((), "sidecar-strip = false")
    if platform == "linux":
        return StripPlan(("strip", "--strip-unneeded"))
    if platform == "macos":
        return StripPlan((), "not on macOS: stripping a library invalidates the code signature arm64 requires")
    return StripPlan((), "nothing to strip on Windows: DLLs carry no symbol table")


def _table(path: Path, section_headers: bool) -> tuple[bool, str, bytes, int] | None:
    """The section (or program) header table of an ELF file, 32 or 64 bit, either byte order:
    (64-bit, byte order, table, entry size); None for anything else."""
    try:
        with path.open("rb") as file:
            ident = file.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
                return None
            wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            header = file.read(48 if wide else 36)
            if len(header) < (48 if wide else 36):
                return None
            word = order + ("Q" if wide else "I")
            if section_headers:
                offset, = struct.unpack_from(word, header, 24 if wide else 16)
                entry, count = struct.unpack_from(order + "HH", header, 42 if wide else 30)
            else:
                offset, = struct.unpack_from(word, header, 16 if wide else 12)
                entry, count = struct.unpack_from(order + "HH", header, 38 if wide else 26)
            if offset == 0 or count == 0 or entry < 8:
                return None
            file.seek(offset)
            table = file.read(entry * count)
    except OSError:
        return None
    return wide, order, table, entry


def has_symbol_table(path: Path) -> bool:
    """An ELF file (32 or 64 bit, either byte order) with a ``.symtab`` section; anything else: False."""
    found = _table(path, section_headers=True)
    if found is None:
        return False
    _wide, order, table, entry = found
    return any(struct.unpack_from(order + "I", table, index * entry + 4)[0] == SHT_SYMTAB
               for index in range(len(table) // entry))


def loadable_segments(path: Path) -> list[tuple[int, int, int]]:
    """(file offset, virtual address, alignment) of each PT_LOAD segment ([]: not ELF, or none)."""
    found = _table(path, section_headers=False)
    if found is None:
        return []
    wide, order, table, entry = found
    segments = []
    for index in range(len(table) // entry):
        if wide and len(table) >= index * entry + 56:
            kind, _flags, offset, address, _p, _f, _m, align = struct.unpack_from(order + "IIQQQQQQ", table,
                                                                                 index * entry)
        elif not wide and len(table) >= index * entry + 32:
            kind, offset, address, _p, _f, _m, _flags, align = struct.unpack_from(order + "8I", table,
                                                                                 index * entry)
        else:
            continue
        if kind == PT_LOAD:
            segments.append((offset, address, align))
    return segments


def loads_cleanly(path: Path) -> bool:
    """Every loadable segment keeps offset ≡ address modulo its alignment and the smallest page, the rule
    the dynamic loader enforces; a file without any is not a library we may replace."""
    segments = loadable_segments(path)
    return bool(segments) and all((address - offset) % MIN_PAGE == 0 and (align <= 1 or (address - offset) % align == 0)
                                  for offset, address, align in segments)


def candidates(folder: Path) -> list[Path]:
    """The regular files under ``folder`` that hold a symbol table (links are left alone)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink() and has_symbol_table(path):
                found.append(path)
    return sorted(found)


@dataclass
class StripReport:
    files: int = 0  # stripped
    bytes_before: int = 0
    bytes_after: int = 0
    skipped: str = ""  # why nothing was stripped on this platform
    paths: list[str] = field(default_factory=list)  # stripped, relative to the folder
    kept: list[str] = field(default_factory=list)  # shipped as they were: stripping broke their layout

    @property
    def saved(self) -> int:
        return self.bytes_before - self.bytes_after


Runner = Callable[[Sequence[str]], object]  # what it returns is not used


def strip_folder(folder: Path, plan: StripPlan, run: Runner, which: Callable[[str], str | None] = shutil.which
                 ) -> StripReport:
    """Strip every library under ``folder`` that holds a symbol table. Each is stripped into a new file,
    which replaces it only if it still loads cleanly (:func:`loads_cleanly`) and holds no symbol table."""
    if not plan.command:
        return StripReport(skipped=plan.skipped)
    if which(plan.command[0]) is None:
        raise MissingToolError(f"{plan.command[0]} (GNU binutils) is not on PATH, so the sidecar's libraries "
                               f"cannot be stripped of their symbol tables",
                               hint="apt-get install binutils (dnf install binutils), or set sidecar-strip = false "
                                    "in [tool.compile] to ship them as they are")
    report = StripReport()
    for path in candidates(folder):
        relative = path.relative_to(folder).as_posix()
        stripped = path.with_name(path.name + ".stripped")
        run([*plan.command, "-o", str(stripped), str(path)])
        if not stripped.is_file() or has_symbol_table(stripped):
            what = "left the symbol table in" if stripped.is_file() else "wrote no stripped copy of"
            stripped.unlink(missing_ok=True)
            raise BuildFailed(f"{' '.join(plan.command)} {what} {relative}",
                              hint="set sidecar-strip = false in [tool.compile], and report the file")
        if not loads_cleanly(stripped):
            stripped.unlink()
            report.kept.append(relative)
            continue
        size = path.stat().st_size
        shutil.copymode(path, stripped)
        stripped.replace(path)
        report.files += 1
        report.paths.append(relative)
        report.bytes_before += size
        report.bytes_after += path.stat().st_size
    return report


def summary(report: StripReport) -> str:
    if report.skipped:
        return f"not stripped ({report.skipped})"
    kept = (f"; {len(report.kept)} kept as they were, stripping breaks their layout ({', '.join(report.kept)})"
            if report.kept else "")
    return f"stripped {report.saved / 2**20:.0f} MiB of symbol tables from {report.files} libraries{kept}"
