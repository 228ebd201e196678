"""Stripping the sidecar's libraries: the plan per platform, the ELF check, and a real strip of a real
library that must still load."""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from compile.errors import BuildFailed, MissingToolError
from compile.strip import (
    candidates,
    has_symbol_table,
    loads_cleanly,
    strip_folder,
    strip_plan,
    summary,
)

C_SOURCE = "int peft_answer(void) { return 42; }\nstatic int helper(void) { return 1; }\nint use(void) { return helper(); }\n"


@pytest.mark.parametrize(("platform", "enabled", "command", "why"), [
    ("linux", True, ("strip", "--strip-unneeded"), ""),
    ("linux", False, (), "sidecar-strip = false"),
    ("macos", True, (), "code signature"),
    ("windows", True, (), "DLLs carry no symbol table"),
])
def test_the_plan_per_platform(platform: str, enabled: bool, command: tuple, why: str) -> None:
    plan = strip_plan(platform, enabled)
    assert plan.command == command
    assert why in plan.skipped
    assert bool(plan.command) != bool(plan.skipped)


def _library(folder: Path, name: str, *flags: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = folder / "answer.c"
    source.write_text(C_SOURCE)
    target = folder / name
    subprocess.run(["gcc", "-shared", "-fPIC", "-g", *flags, "-o", str(target), str(source)], check=True)
    return target


@pytest.mark.parametrize(("content", "expected"), [
    (b"", False),
    (b"\x7fELF", False),  # truncated header
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 57, False),  # a header that points at no section table
    (b"#!/bin/sh\necho not elf\n", False),
])
def test_anything_but_an_elf_file_with_a_symbol_table_is_left_alone(tmp_path: Path, content: bytes,
                                                                    expected: bool) -> None:
    path = tmp_path / "file.so"
    path.write_bytes(content)
    assert has_symbol_table(path) is expected


def _strip_or_skip() -> None:
    if shutil.which("strip") is None:
        pytest.skip("strip is not installed")


def _run(command) -> None:
    subprocess.run(command, check=True)


def test_a_real_strip_removes_the_table_and_the_library_still_loads(tmp_path: Path) -> None:
    _strip_or_skip()
    library = _library(tmp_path, "libanswer.so")
    already = _library(tmp_path, "libstripped.so", "-s")
    (tmp_path / "data.bin").write_bytes(b"\x7fELF not really")
    (tmp_path / "link.so").symlink_to(library)
    library.chmod(0o755)
    assert has_symbol_table(library) and not has_symbol_table(already)
    assert candidates(tmp_path) == [library]
    assert loads_cleanly(library) and not loads_cleanly(tmp_path / "data.bin")
    before = library.stat().st_size

    report = strip_folder(tmp_path, strip_plan("linux"), _run)

    assert report.files == 1 and report.paths == ["libanswer.so"] and report.kept == []
    assert report.bytes_before == before and 0 < report.bytes_after < before
    assert not has_symbol_table(library) and library.stat().st_mode & 0o777 == 0o755
    assert sorted(path.name for path in tmp_path.iterdir()) == ["answer.c", "data.bin", "libanswer.so",
                                                                 "libstripped.so", "link.so"]
    assert ctypes.CDLL(str(library)).peft_answer() == 42, "a stripped library must still export its symbols"
    assert summary(report).startswith("stripped 0 MiB of symbol tables from 1 libraries")


def _misalign_first_load_segment(path: Path) -> None:
    """What strip does to a library patchelf rewrote: a PT_LOAD whose offset and address disagree."""
    data = bytearray(path.read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    entry, count = struct.unpack_from("<HH", data, 54)
    for index in range(count):
        at = phoff + index * entry
        if struct.unpack_from("<I", data, at)[0] == 1:
            offset, = struct.unpack_from("<Q", data, at + 8)
            struct.pack_into("<Q", data, at + 8, offset + 16)
            break
    path.write_bytes(bytes(data))


def test_a_library_that_stripping_breaks_ships_as_it_was(tmp_path: Path) -> None:
    _strip_or_skip()
    library = _library(tmp_path, "libanswer.so")
    original = library.read_bytes()

    def strip_like_on_a_patchelf_library(command) -> None:
        _run(command)
        _misalign_first_load_segment(Path(command[command.index("-o") + 1]))

    report = strip_folder(tmp_path, strip_plan("linux"), strip_like_on_a_patchelf_library)

    assert report.kept == ["libanswer.so"] and report.files == 0
    assert library.read_bytes() == original and not list(tmp_path.glob("*.stripped"))
    assert "1 kept as they were, stripping breaks their layout (libanswer.so)" in summary(report)


@pytest.mark.parametrize(("runner", "says"), [
    (lambda command: None, "wrote no stripped copy of libanswer.so"),
    (lambda command: shutil.copyfile(command[-1], command[command.index("-o") + 1]),
     "left the symbol table in libanswer.so"),
])
def test_a_strip_that_does_not_strip_fails_the_build(tmp_path: Path, runner, says: str) -> None:
    library = _library(tmp_path, "libanswer.so")
    with pytest.raises(BuildFailed, match=says):
        strip_folder(tmp_path, strip_plan("linux"), runner, which=lambda name: "/usr/bin/" + name)
    assert has_symbol_table(library) and not list(tmp_path.glob("*.stripped"))


def test_a_missing_strip_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError) as error:
        strip_folder(tmp_path, strip_plan("linux"), lambda command: None, which=lambda name: None)
    assert "apt-get install binutils" in str(error.value) and "sidecar-strip = false" in str(error.value)


@pytest.mark.parametrize("platform", ["macos", "windows"])
def test_where_nothing_is_stripped_the_report_says_why(tmp_path: Path, platform: str) -> None:
    calls: list = []
    report = strip_folder(tmp_path, strip_plan(platform), calls.append, which=lambda name: None)
    assert calls == [] and report.files == 0 and report.skipped
    assert summary(report) == f"not stripped ({strip_plan(platform).skipped})"
