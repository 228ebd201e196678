"""What a Linux shared library needs, read from its ELF dynamic section (no tool, no import of it).

Only what the library check needs (:mod:`backend.self_check`): whether a file is a shared object, its
``SONAME``, its ``NEEDED`` entries and its ``RPATH`` / ``RUNPATH``. Reads are bounded: the headers and
the dynamic string table, never the file (a CUDA library is hundreds of MiB).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"
ET_DYN = 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
MAX_TABLE_BYTES = 16 << 20  # a dynamic section or string table larger than this is not a real one


class NotELF(ValueError):
    """Not an ELF file this reader understands (or a damaged one)."""


@dataclass(frozen=True)
class DynamicInfo:
    path: Path
    shared_object: bool  # ET_DYN without an interpreter: a library, not a program
    soname: str | None
    needed: tuple[str, ...]
    search_paths: tuple[str, ...]  # RUNPATH, else RPATH, split on ':' ($ORIGIN unexpanded)


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    if size < 0 or size > MAX_TABLE_BYTES:
        raise NotELF(f"implausible table size {size}")
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise NotELF("truncated")
    return data


def read_dynamic(path: Path) -> DynamicInfo:
    """The dynamic facts of ``path``; NotELF for anything else (a 32-bit or big-endian file included:
    the builds this reads are 64-bit little-endian)."""
    with path.open("rb") as handle:
        header = handle.read(64)
        if len(header) < 64 or header[:4] != ELF_MAGIC:
            raise NotELF("no ELF header")
        if header[4] != 2 or header[5] != 1:
            raise NotELF("not a 64-bit little-endian ELF file")
        e_type, = struct.unpack_from("<H", header, 16)
        e_phoff, = struct.unpack_from("<Q", header, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", header, 54)
        if e_phentsize < 56 or e_phnum > 4096:
            raise NotELF("bad program headers")
        table = _read(handle, e_phoff, e_phentsize * e_phnum)
        loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        dynamic: tuple[int, int] | None = None
        interpreter = False
        for index in range(e_phnum):
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
                "<IIQQQQ", table, index * e_phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
            elif p_type == PT_INTERP:
                interpreter = True
        shared = e_type == ET_DYN and not interpreter
        if dynamic is None:
            return DynamicInfo(path, shared, None, (), ())
        entries = _read(handle, dynamic[0], dynamic[1])
        tags: list[tuple[int, int]] = []
        for offset in range(0, len(entries) - 15, 16):
            tag, value = struct.unpack_from("<qQ", entries, offset)
            if tag == DT_NULL:
                break
            tags.append((tag, value))
        strtab = next((value for tag, value in tags if tag == DT_STRTAB), None)
        strsz = next((value for tag, value in tags if tag == DT_STRSZ), None)
        if strtab is None or strsz is None:
            return DynamicInfo(path, shared, None, (), ())
        file_offset = next((offset + strtab - vaddr for vaddr, offset, size in loads
                            if vaddr <= strtab < vaddr + size), None)
        if file_offset is None:
            raise NotELF("string table outside every loaded segment")
        strings = _read(handle, file_offset, strsz)

    def text(offset: int) -> str:
        end = strings.find(b"\0", offset)
        return strings[offset:end if end >= 0 else len(strings)].decode("utf-8", "replace")

    needed = tuple(text(value) for tag, value in tags if tag == DT_NEEDED)
    soname = next((text(value) for tag, value in tags if tag == DT_SONAME), None)
    runpath = next((text(value) for tag, value in tags if tag == DT_RUNPATH), None)
    rpath = next((text(value) for tag, value in tags if tag == DT_RPATH), None)
    chosen = runpath if runpath is not None else rpath
    return DynamicInfo(path, shared, soname, needed, tuple(part for part in (chosen or "").split(":") if part))
