"""Real builds of the real backend (Linux): Nuitka standalone and PyInstaller onefile, then verify.

Artifacts already in dist/ (CI's build stage makes them) are reused; missing ones are built here, so
the full test suite also works from a fresh clone, slowly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.service_manager import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.build]

COMMANDS = {
    "nuitka-standalone": ["standalone"],
    "pyinstaller-onefile": ["pyinstaller", "--onefile"],
}


def compile_cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compile", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def artifact(variant: str) -> Path:
    folder = REPO_ROOT / "dist" / variant
    if not (folder / "build.json").is_file():
        result = compile_cli(*COMMANDS[variant])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.mark.parametrize("variant", sorted(COMMANDS))
def test_verify_passes(variant: str) -> None:
    result = compile_cli("verify", str(artifact(variant)), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("ready line", "data files", "idle process", "ml imports", "training job", "generation", "graceful shutdown"):
        assert f"[ok  ] {check}" in result.stdout


def test_verify_names_a_deleted_data_file(tmp_path: Path) -> None:
    source = artifact("nuitka-standalone")
    copy = tmp_path / "nuitka-standalone"
    shutil.copytree(source, copy, copy_function=os.link)  # hard links: cheap, and the original stays intact
    victim = copy / "peft_engine" / "backend" / "resources" / "presets" / "lora-presets.json"
    victim.unlink()
    result = compile_cli("verify", str(copy), timeout=900)
    assert result.returncode == 7, result.stdout + result.stderr
    assert "[FAIL] data files" in result.stdout
    assert "backend/resources/presets/lora-presets.json missing or unreadable" in result.stdout


def test_report_explains_the_standalone_build() -> None:
    result = compile_cli("report", str(artifact("nuitka-standalone")), "--modules")
    assert result.returncode == 0, result.stderr
    assert "sidecar" in result.stdout and "torch" in result.stdout
    assert "compiled" in result.stdout and "bytecode" in result.stdout
