"""Mutation tests of a real build (Linux): each breaks the Nuitka standalone in one known way, and
``compile verify`` must fail naming the cause (``python -m tests builds`` runs verify on every build).

Artifacts already in dist/ (CI's build stage makes them) are reused; missing ones are built here, so
the full test suite also works from a fresh clone, slowly. A mutated artifact is a hard-linked copy
(cheap, and the original stays intact); what a mutation changes is replaced, never edited in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.variants import NUITKA_STANDALONE, variant_named
from backend_client.manager import REPO_ROOT
from compile.nuitka_patches import BYTECODE_FILE_NAME

pytestmark = [pytest.mark.integration, pytest.mark.build]

def compile_cli(*args: str, timeout: float = 3600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compile", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def artifact(variant: str) -> Path:
    folder = REPO_ROOT / "dist" / variant
    if not (folder / "build.json").is_file():
        result = compile_cli(*variant_named(variant).build_args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def linked_copy(variant: str, tmp_path: Path) -> Path:
    copy = tmp_path / variant
    shutil.copytree(artifact(variant), copy, copy_function=os.link)
    return copy


def test_verify_names_a_deleted_data_file_even_under_python_O(tmp_path: Path) -> None:
    """Checks are not ``assert``: run with ``python -O``, verify still fails."""
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    (copy / "peft_engine" / "backend" / "resources" / "presets" / "lora-presets.json").unlink()
    result = subprocess.run([sys.executable, "-O", "-m", "compile", "verify", str(copy)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] data files" in result.stdout
    assert "backend/resources/presets/lora-presets.json missing or unreadable" in result.stdout


def test_verify_names_torch_removed_from_the_sidecar(tmp_path: Path) -> None:
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    shutil.rmtree(copy / "peft_engine" / "ml_sidecar" / "torch")
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] generate (first use)" in result.stdout
    assert "No module named 'torch'" in result.stdout


def test_verify_names_a_sidecar_that_is_not_on_the_import_path(tmp_path: Path) -> None:
    """The sidecar shipped but not found where the build looks for it: the first generation would fail."""
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    (copy / "peft_engine" / "ml_sidecar").rename(copy / "peft_engine" / "ml_sidecar.moved")
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] idle process" in result.stdout
    assert "the ML sidecar is not on the import path at startup" in result.stdout
    assert "[FAIL] stream (first use)" in result.stdout and "ModuleNotFoundError" in result.stdout


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated"])
def test_verify_names_a_damaged_bytecode_file(tmp_path: Path, damage: str) -> None:
    """The modules Nuitka keeps as bytecode live in a file beside the executable (carried patch
    bytecode-outside-image). A damaged copy must stop the program with an error naming the file, never
    run garbage: every module's bytes carry a check."""
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    target = copy / "peft_engine" / BYTECODE_FILE_NAME
    data = bytearray(target.read_bytes())
    target.unlink()  # a hard link: replace it, never edit the original
    if damage == "truncated":
        del data[len(data) // 2:]
    else:
        for offset in range(100, len(data), 997):
            data[offset] ^= 0x5A
    target.write_bytes(bytes(data))
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] ready line" in result.stdout
    verb = "read" if damage == "truncated" else "use"
    assert f"cannot {verb} the bytecode of module" in result.stdout and BYTECODE_FILE_NAME in result.stdout


def test_verify_names_a_worker_that_cannot_start() -> None:
    result = compile_cli("verify", str(artifact(NUITKA_STANDALONE.name)), timeout=900,
                         env={"PEFT_ENGINE_FAULTS": "worker-start"})
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] training (first use)" in result.stdout
    assert "ended 'failed': worker exited with code 1 without a result" in result.stdout


def test_report_explains_the_standalone_build() -> None:
    result = compile_cli("report", str(artifact(NUITKA_STANDALONE.name)), "--modules")
    assert result.returncode == 0, result.stderr
    assert "sidecar" in result.stdout and "torch" in result.stdout
    assert "compiled" in result.stdout and "bytecode" in result.stdout


def test_verify_names_a_library_whose_dependency_is_gone(tmp_path: Path) -> None:
    """The library check (``--self-check libraries``, inside the build): every shared library it ships
    resolves what it needs inside it. Take one that torch's libraries need away."""
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    (copy / "peft_engine" / "ml_sidecar" / "torch" / "lib" / "libc10.so").unlink()
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] self-check libraries" in result.stdout
    assert "libtorch_cpu.so needs libc10.so, which the build does not ship" in result.stdout


def test_verify_names_a_stripped_library_that_no_longer_loads(tmp_path: Path) -> None:
    """A library the build stripped (its symbol table out, compile/strip.py) that the loader then
    refuses: the check fails with the loader's own words. The damage is what a bad strip does: a
    loadable segment's offset no longer congruent with its address."""
    copy = linked_copy(NUITKA_STANDALONE.name, tmp_path)
    target = copy / "peft_engine" / "ml_sidecar" / "torch" / "lib" / "libtorch_global_deps.so"
    data = bytearray(target.read_bytes())
    target.unlink()
    phoff = int.from_bytes(data[32:40], "little")
    entry, count = int.from_bytes(data[54:56], "little"), int.from_bytes(data[56:58], "little")
    for index in range(count):
        base = phoff + index * entry
        if int.from_bytes(data[base:base + 4], "little") == 1:  # PT_LOAD: shift its file offset by 8 bytes
            offset = int.from_bytes(data[base + 8:base + 16], "little")
            data[base + 8:base + 16] = (offset + 8).to_bytes(8, "little")
            break
    target.write_bytes(bytes(data))
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] self-check libraries" in result.stdout and "libtorch_global_deps.so" in result.stdout
