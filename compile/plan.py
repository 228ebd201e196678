"""The plan of a build: what it will run, decided from the options and the build env, with nothing
created. ``python -m compile plan`` prints exactly the command a build then runs (:mod:`compile.build`).

- :func:`probe` asks the build env (``compile/probe.py`` runs inside it) for its distributions and what
  the backend imports;
- :func:`stdlib_closure` finds the standard-library modules the sidecar needs (cached per pin set);
- :func:`plan_inputs` gathers data files, the sidecar plan and that closure into the planners' inputs;
- :func:`planned_command` and :func:`planned_environment` are the tool's command line and variables.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from typing import Any

from compile.backends import BuildInputs
from compile.backends.nuitka import nuitka_command, nuitka_environment
from compile.backends.pyinstaller import pyinstaller_command
from compile.buildenv import BuildEnv, env_root
from compile.datafiles import data_files_for, module_sources
from compile.options import BuildOptions
from compile.probe import PROBE_VERSION
from compile.progress import QUIET, Progress
from compile.results import write_json_atomic
from compile.runner import capture, tool_env
from compile.sidecar import SIDECAR_DIR_NAME, SidecarPlan, plan_sidecar

_probed: dict[tuple[str, ...], dict[str, Any]] = {}  # one probe per environment, project and question


def probe(env: BuildEnv, options: BuildOptions, command: str, *names: str) -> dict[str, Any]:
    key = (str(env.python), str(options.root), command, *names)
    if key not in _probed:
        output = capture([str(env.python), str(options.root / "compile" / "probe.py"), command, *names],
                         cwd=options.root, env=tool_env(env.bin_dir))
        _probed[key] = json.loads(output)
    return _probed[key]


_scanned: dict[str, dict[str, Any]] = {}  # this process's scans, by cache key


def stdlib_closure(env: BuildEnv, options: BuildOptions, plan: SidecarPlan, facts: dict[str, Any], *,
                   cache: bool = True) -> list[str]:
    """The standard-library modules that the sidecar imports, minus exclusions: each module
    named in an import (``email.utils``, not all of ``email``); Nuitka follows their own imports.

    Scanning torch takes about a minute, so the result is cached, keyed by what it depends on: the
    Python version and each sidecar distribution's name and version. Any environment with the same
    pins (the build env, or this one for ``compile plan``) reuses it; ``cache=False`` reads it but
    never writes it."""
    content = [PROBE_VERSION, facts["python"][:2],
               *(f"{name}=={facts['distributions'][name]['version']}" for name in plan.distributions)]
    key = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
    cached = env_root(options) / f"stdlib-{key}.json"
    if key in _scanned:
        found = _scanned[key]
    elif cached.is_file():
        found = json.loads(cached.read_text(encoding="utf-8"))
    else:
        print("scanning the sidecar's standard-library imports (about a minute; builds cache the result)",
              flush=True)
        found = probe(env, options, "stdlib", *plan.distributions)["stdlib_imports"]
        if cache:
            write_json_atomic(cached, found)
    _scanned[key] = found
    excluded = set(options.stdlib_exclude)
    kept = {name: info for name, info in found.items() if name.split(".")[0] not in excluded}
    # Every named module is included as a module; a package named with nothing below it (`import
    # concurrent`) is included as that package's __init__ only, which is what such an import runs.
    return sorted(kept)


def plan_inputs(options: BuildOptions, env: BuildEnv, *, cache: bool = True,
                progress: Progress | None = None) -> tuple[BuildInputs, dict[str, Any]]:
    """Everything the planners need, decided and nothing created: data files, the build env's facts, the
    sidecar plan and (for Nuitka) the standard-library closure. ``compile plan`` prints the command these
    give; a build then stages the sidecar (:func:`compile.build.stage_sidecar`) and runs it."""
    progress = progress or Progress(QUIET)
    data = tuple(data_files_for(options))
    with progress.step("probe the build env"):
        facts = probe(env, options, "facts")
    data += tuple(module_sources(options.module_sources, facts))
    details: dict[str, Any] = {"python": facts["python"], "facts": facts}
    with progress.step("plan the sidecar"):
        plan = plan_sidecar(facts, options.sidecar_roots, options.sidecar_exclude)
        progress.line(f"  {len(plan.distributions)} distributions in the sidecar, {len(plan.shared)} shared")
    details["sidecar"] = plan
    if options.tool == "pyinstaller":  # the same declaration: what no build ships, PyInstaller leaves out
        return BuildInputs(python=str(env.python), data_files=data, sidecar=plan), details
    with progress.step("standard-library modules the sidecar needs"):
        modules = stdlib_closure(env, options, plan, facts, cache=cache)
    inputs = BuildInputs(python=str(env.python), data_files=data, sidecar=plan, stdlib_modules=tuple(modules),
                         sidecar_dir=options.build_path / SIDECAR_DIR_NAME)
    return inputs, details


def planned_environment(options: BuildOptions, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the tool run gets on top of the caller's; flags the caller set come last and win."""
    planned = nuitka_environment(options)
    return {key: f"{value} {environ[key]}" if environ.get(key) else value for key, value in planned.items()}


def command_line(command: list[str], variables: Mapping[str, str], platform_name: str) -> str:
    """The command as one shell line, with its environment, for the platform's shell."""
    if platform_name == "windows":
        return "".join(f"set {key}={value}&& " for key, value in variables.items()) + " ".join(command)
    return " ".join([*(f"{key}={shlex.quote(value)}" for key, value in variables.items()), shlex.join(command)])


def planned_command(options: BuildOptions, inputs: BuildInputs) -> list[str]:
    return nuitka_command(options, inputs) if options.tool == "nuitka" else pyinstaller_command(options, inputs)
