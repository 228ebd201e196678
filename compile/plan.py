"""The plan of a build: what it will run, decided from the options and the build env, with nothing
created. ``python -m compile plan`` prints exactly the command a build then runs (:mod:`compile.build`).

- :func:`probe` asks the build env (``compile/probe.py`` runs inside it) for its distributions and what
  the backend imports;
- :func:`stdlib_closure` finds the standard-library modules the sidecar needs (cached per pin set);
- :func:`plan_inputs` gathers data files, the sidecar plan and that closure into the planners' inputs;
- :func:`planned_command` and :func:`planned_environment` are the tool's command line and variables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
from collections.abc import Mapping
from typing import Any

from backend.runtime_paths import TORCH_FLAVOUR_FILE
from compile.backends import BuildInputs
from compile.backends.nuitka import nuitka_command, nuitka_environment
from compile.backends.pyinstaller import pyinstaller_command
from compile.buildenv import BuildEnv, env_root
from compile.datafiles import DataFile, data_files_for, module_sources
from compile.errors import BuildEnvError
from compile.flavour import check_flavour
from compile.options import BuildOptions
from compile.probe import PROBE_VERSION
from compile.progress import QUIET, Progress
from compile.results import write_json_atomic
from compile.runner import capture, tool_env
from compile.sidecar import SIDECAR_DIR_NAME, SidecarPlan, plan_sidecar

FLAVOURS_DIR = "compile/flavours"  # compile/flavours/cuda: the marker file a CUDA build carries

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


def flavour_marker(options: BuildOptions) -> tuple[DataFile, ...]:
    """A non-CPU flavour's build carries a file that names it, which the running backend reads to say
    which variant it is (:func:`backend.runtime_paths.current_markers`)."""
    if options.torch == "cpu":
        return ()
    return (DataFile((options.root / FLAVOURS_DIR / options.torch).resolve(),
                     f"backend/resources/{TORCH_FLAVOUR_FILE}"),)


def plan_inputs(options: BuildOptions, env: BuildEnv, *, cache: bool = True,
                progress: Progress | None = None) -> tuple[BuildInputs, dict[str, Any]]:
    """Everything the planners need, decided and nothing created: data files, the build env's facts, the
    sidecar plan and (for Nuitka) the standard-library closure. ``compile plan`` prints the command these
    give (``cache=False``: it only notes a torch of the wrong flavour); a build then stages the sidecar
    (:func:`compile.build.stage_sidecar`) and runs it, after :func:`compile.flavour.check_flavour`."""
    progress = progress or Progress(QUIET)
    data = tuple(data_files_for(options)) + flavour_marker(options)
    with progress.step("probe the build env"):
        facts = probe(env, options, "facts")
    data += tuple(module_sources(options.module_sources, facts))
    details: dict[str, Any] = {"python": facts["python"], "facts": facts}
    try:
        details["torch_version"] = check_flavour(options.torch, facts, f"the build env {env.path}")
    except BuildEnvError as exc:
        if cache:
            raise
        print(f"# note: {exc}")
    with progress.step("plan the sidecar"):
        plan = plan_sidecar(facts, options.sidecar_roots, options.sidecar_exclude)
        progress.line(f"  {len(plan.distributions)} distributions in the sidecar, {len(plan.shared)} shared")
    details["sidecar"] = plan
    if options.tool == "pyinstaller":  # the same declaration: what no build ships, PyInstaller leaves out
        return BuildInputs(python=str(env.python), data_files=data, sidecar=plan), details
    with progress.step("standard-library modules the sidecar needs"):
        modules = stdlib_closure(env, options, plan, facts, cache=cache)
    inputs = BuildInputs(python=str(env.python), data_files=data, sidecar=plan, stdlib_modules=tuple(modules),
                         sidecar_dir=options.build_path / SIDECAR_DIR_NAME,
                         build_id=build_id(options, env, facts, data))
    return inputs, details


def build_id(options: BuildOptions, env: BuildEnv, facts: Mapping[str, Any], data: tuple[DataFile, ...]) -> str:
    """What a build is made of, hashed: the program's sources, its data files, every installed
    distribution's version, the build env (its requirements and Nuitka patches) and the options. Builds are
    reproducible (scripts/reproducible.py), so the same id means the same content, and content that
    differs has another id: a onefile's unpack folder is keyed by it (``{BUILD}``)."""
    digest = hashlib.sha256()
    sources = [*sorted((options.root / "backend").rglob("*.py")), options.root / options.entry_point]
    for path in sources:
        digest.update(path.relative_to(options.root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for item in sorted(data):
        digest.update(item.destination.encode() + b"\0" + item.source.read_bytes() + b"\0")
    versions = sorted(f"{name}=={info['version']}" for name, info in facts["distributions"].items())
    settings = {key: value for key, value in dataclasses.asdict(options).items() if key != "project_root"}
    digest.update(json.dumps([versions, env.key, settings], default=str, sort_keys=True).encode())
    return digest.hexdigest()[:12]


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
