"""One build from options to ``dist/<variant>/``: build env and patches, the plan (:mod:`compile.plan`),
the staged sidecar, the tool run, the artifact, its records and checksums.

What a build decides lives in :mod:`compile.plan` and the planners; this module acts on it (through
:mod:`compile.runner` and file copies), so ``compile plan`` prints exactly the command a build runs.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backend.variants import NUITKA_STANDALONE, PYINSTALLER_ONEDIR, Variant, flavoured
from compile.backends import BuildInputs
from compile.backends.nuitka import report_path
from compile.buildenv import BuildEnv, ensure_build_env, installed, pinned_versions, requirements
from compile.config_check import StaleEntry, stale_entries
from compile.datafiles import MANIFEST_NAME, manifest
from compile.errors import BuildFailed, ConfigError, OnefileTooLarge
from compile.flavour import cuda_distributions
from compile.layers import LAYERS_FILE
from compile.layers import manifest as layer_manifest
from compile.nuitka_patches import carried, patch_build_env
from compile.nuitka_report import NuitkaReport, parse_report
from compile.onefile_limit import ONEFILE_LIMIT_BYTES, refusal, tool_overflowed
from compile.options import BuildOptions
from compile.plan import command_line, plan_inputs, planned_command, planned_environment
from compile.platforms import windows
from compile.progress import QUIET, NuitkaPhases, Progress, PyInstallerPhases
from compile.results import (
    BUILD_RECORD,
    BUILD_SCHEMA_VERSION,
    git_commit,
    tree_size,
    write_checksums,
    write_json_atomic,
)
from compile.runner import RunResult, capture, run, tool_env
from compile.sidecar import (
    SIDECAR_DIR_NAME,
    MaterializeReport,
    SidecarPlan,
    SourcelessReport,
    drop_sources,
    materialize,
)
from compile.strip import StripReport, strip_folder, strip_plan
from compile.strip import summary as strip_summary


def stage_sidecar(options: BuildOptions, env: BuildEnv, inputs: BuildInputs, details: dict[str, Any],
                  progress: Progress) -> None:
    """Create the planned sidecar folder: copy the distributions, strip their libraries, byte-compile them
    and drop the sources that are not kept; what each step did goes into ``details``."""
    assert inputs.sidecar is not None and inputs.sidecar_dir is not None
    with progress.step("copy the sidecar"):
        report = materialize(inputs.sidecar, details["facts"], inputs.sidecar_dir, options.sidecar_trim)
        progress.line(f"  {report.files} files, {report.bytes / 2**20:.0f} MiB "
                      f"(trimmed {report.trimmed_bytes / 2**20:.0f} MiB)")
    with progress.step("strip the sidecar's libraries"):
        stripped = strip_folder(inputs.sidecar_dir, strip_plan(options.platform, options.sidecar_strip),
                                lambda command: run(command, what="strip"))
        progress.line(f"  {strip_summary(stripped)}")
        details["sidecar_strip"] = stripped
    with progress.step("byte-compile the sidecar"):
        byte_compile(env, inputs.sidecar_dir)
        details["sidecar_sourceless"] = drop_sources(inputs.sidecar, details["facts"], inputs.sidecar_dir,
                                                     options.sidecar_keep_sources)
    details["sidecar_files"] = report


def byte_compile(env: BuildEnv, folder: Path) -> None:
    """Byte-compile the sidecar so that the same sources give the same bytes, wherever and whenever the
    build ran (reproducible builds, docs/developer-guide/updates.md): ``unchecked-hash`` records the
    source's hash, not its mtime, so a ``.pyc`` stays valid after copying or unpacking and is never
    rewritten; ``-s``/``-p`` record each file's name as ``ml_sidecar/<path in the sidecar>``, not the
    build folder's absolute path (Python puts the real path back when it imports a module beside its
    source; a sourceless module's tracebacks show this one)."""
    run([str(env.python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         "-s", str(folder), "-p", SIDECAR_DIR_NAME, str(folder)], check=False, what="compileall")


def tool_version(env: BuildEnv, tool: str) -> str:
    module = "nuitka" if tool == "nuitka" else "PyInstaller"
    try:
        out = capture([str(env.python), "-c", f"import importlib.metadata as m; print(m.version({tool!r}))"])
        return out.strip() or module
    except BuildFailed:
        return "unknown"


def collect_artifact(options: BuildOptions) -> Path:
    """Move the tool's output to ``dist/<variant>/`` and return the executable (or app) path."""
    target = options.dist_path
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    build = options.build_path
    name = options.product_name
    if options.tool == "nuitka":
        produced = build / (options.executable_name if options.onefile else f"{Path(options.entry_point).stem}.dist")
    else:
        produced = build / "dist" / (options.executable_name if options.onefile else name)
    placed = target / (options.executable_name if options.onefile else name)
    shutil.move(str(produced), placed)
    return placed if options.onefile else placed / options.executable_name


def carried_patches(options: BuildOptions, env: BuildEnv, log: Callable[[str], None]) -> dict[str, str]:
    """Apply the patches carried against Nuitka to the isolated build env; {patch: applied|missing|stock}."""
    if options.tool != "nuitka":
        return {}
    patches = carried()
    if not options.nuitka_patches:
        log(f"  stock Nuitka (nuitka-patches = false): {len(patches)} carried patches not applied; "
            "docs/licence.md and docs/benchmarks.md say what each costs")
        return {patch.name: "stock" for patch in patches}
    if not env.isolated:
        for patch in patches:
            log(f"  warning: nuitka patch {patch.name} not applied (isolated = false leaves your Nuitka alone): "
                f"{patch.subject}")
        return {patch.name: "missing" for patch in patches}
    version = pinned_versions(requirements({}, options)).get("nuitka")  # the build requirements' pin
    nuitka = f"nuitka=={version}" if version else "nuitka"

    def reinstall() -> None:
        run([str(env.python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--force-reinstall",
             "--no-deps", nuitka], log_path=env.path.parent / f"{env.key}-nuitka-reinstall.log",
            what=f"pip install --force-reinstall {nuitka} (restoring Nuitka's sources to re-patch them)")

    patch_build_env(env.python, log=lambda line: log(f"  {line}"), reinstall=reinstall, patches=patches)
    return {patch.name: "applied" for patch in patches}


def execute_build(options: BuildOptions, pyproject: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Build, collect, check and record one variant; each step a line with its elapsed time."""
    progress = progress or Progress()
    started_at, wall_started = time.time(), time.perf_counter()
    with progress.step("build env"):
        env = ensure_build_env(options, pyproject, log=progress.line)
        patches = carried_patches(options, env, progress.line)
    env_seconds = time.perf_counter() - wall_started
    options.build_path.mkdir(parents=True, exist_ok=True)
    inputs, details = plan_inputs(options, env, progress=progress)
    if options.tool == "nuitka":
        stage_sidecar(options, env, inputs, details, progress)
    details["nuitka_patches"] = patches
    result, command, variables = run_tool(options, env, inputs, progress)
    with progress.step("collect the artifact"):
        executable = collect_artifact(options)
        if options.onefile:
            refuse_onefile(options, executable.stat().st_size)
        if options.tool == "nuitka" and not options.onefile and inputs.sidecar_dir is not None:
            shutil.copytree(inputs.sidecar_dir, executable.parent / SIDECAR_DIR_NAME)
        write_json_atomic(options.dist_path / MANIFEST_NAME, manifest(list(inputs.data_files)))
        report = None
        if options.tool == "nuitka":
            shutil.copy2(report_path(options), options.dist_path / "compilation-report.xml")
            report = parse_report(Path(report_path(options)))
    with progress.step("check [tool.compile] against the build"):
        stale = stale_entries(options, details["facts"], details["sidecar"], report, details.get("sidecar_files"))
        for entry in stale:
            progress.line(f"  stale: {entry}", QUIET)
    with progress.step("records and checksums"):
        artifact = executable if options.onefile else options.dist_path / options.product_name
        record = build_record(options, env, details, inputs, report, stale, command=command, variables=variables,
                              executable=executable, artifact=artifact, tool_result=result, started_at=started_at,
                              wall_seconds=time.perf_counter() - wall_started, env_seconds=env_seconds)
        write_checksums(options.dist_path, artifact)
        write_json_atomic(options.dist_path / LAYERS_FILE, layer_manifest(artifact, options.variant, options.version))
        write_json_atomic(options.dist_path / BUILD_RECORD, record)
    if stale:
        raise ConfigError(
            f"{len(stale)} [tool.compile] entr{'y' if len(stale) == 1 else 'ies'} matched nothing in this build:\n  "
            + "\n  ".join(map(str, stale)),
            hint="remove or rename them in pyproject.toml (a dependency may have renamed a module); the artifact "
                 "was built and recorded")
    return record


def run_tool(options: BuildOptions, env: BuildEnv, inputs: BuildInputs,
             progress: Progress) -> tuple[RunResult, list[str], dict[str, str]]:
    """Run Nuitka or PyInstaller, following its phases, with a heartbeat."""
    if options.platform == "windows" and options.tool == "pyinstaller":
        windows.version_file_path(options).write_text(windows.version_file_text(options), encoding="utf-8")
    command = planned_command(options, inputs)
    variables = planned_environment(options, os.environ)
    progress.raw("$ " + command_line(command, variables, options.platform))
    log = options.build_path / f"{options.tool}.log"
    # ccache keys include absolute paths; relative to the project they match across clones. A fixed hash
    # seed: marshal writes a frozenset constant's items in iteration order, which a random string hash
    # changes from run to run (two PyInstaller builds of one commit differed in base_library.zip only).
    tool_environment = tool_env(env.bin_dir, {"CCACHE_BASEDIR": str(options.root), "PYTHONHASHSEED": "0",
                                              **variables})
    phases: NuitkaPhases | PyInstallerPhases
    if options.tool == "nuitka":
        phases = NuitkaPhases(progress, options.build_path / f"{Path(options.entry_point).stem}.build")
    else:  # the folders compile/backends/pyinstaller.py passes it
        phases = PyInstallerPhases(progress, options.build_path / "work", options.build_path / "dist")
    with progress.step(f"{options.tool} (full output: {log})"), progress.heartbeat(phases.status):
        try:
            result = run(command, log_path=log, cwd=options.root, env=tool_environment, what=options.tool,
                         on_line=phases.feed)
        except BuildFailed as exc:
            if options.onefile and tool_overflowed(str(exc)):
                refuse_onefile(options, ONEFILE_LIMIT_BYTES + 1)
            raise
    return result, command, variables


def folder_variant(options: BuildOptions) -> Variant:
    """The folder build of the same tool and torch flavour as a onefile."""
    base = NUITKA_STANDALONE if options.tool == "nuitka" else PYINSTALLER_ONEDIR
    return flavoured(base, options.torch)


def refuse_onefile(options: BuildOptions, size_bytes: int) -> None:
    """Raise OnefileTooLarge (after removing what was made) when a onefile of ``size_bytes`` cannot ship."""
    folder = folder_variant(options)
    reason = refusal(size_bytes, options.variant, folder.name, folder.build_command)
    if reason is None:
        return
    shutil.rmtree(options.dist_path, ignore_errors=True)
    raise OnefileTooLarge(reason, hint=f"python -m compile {' '.join(folder.build_args)}")


def build_record(options: BuildOptions, env: BuildEnv, details: dict[str, Any], inputs: BuildInputs,
                 report: NuitkaReport | None, stale: list[StaleEntry], *, command: list[str],
                 variables: dict[str, str], executable: Path, artifact: Path, tool_result: RunResult,
                 started_at: float, wall_seconds: float, env_seconds: float) -> dict[str, Any]:
    """``build.json``: what was built, how, from what, how long it took."""
    record: dict[str, Any] = {
        "schema_version": BUILD_SCHEMA_VERSION,
        "variant": options.variant,
        "platform": options.platform,
        "machine": platform.machine(),
        "tool": options.tool,
        "tool_version": tool_version(env, options.tool),
        "python": ".".join(str(n) for n in details["python"]),
        "commit": git_commit(options.root),
        "started_at": started_at,
        "wall_seconds": round(wall_seconds, 3),
        "tool_wall_seconds": round(tool_result.wall_seconds, 3),
        "tool_cpu_seconds": round(tool_result.cpu_seconds, 3),
        "build_env_seconds": round(env_seconds, 3),
        "build_env": {"key": env.key, "isolated": env.isolated},
        "executable": executable.relative_to(options.dist_path).as_posix(),
        "size_bytes": tree_size(artifact),
        "options": _jsonable(asdict(options)),
        "command": command,
        "environment": variables,
        "log": str(tool_result.log_path),
        "data_manifest": MANIFEST_NAME,
        "nuitka_report": report.summary() if report else None,
        "stale_config": [str(entry) for entry in stale],
        "nuitka_patches": details.get("nuitka_patches", {}),
        "torch": {"flavour": options.torch, "version": details.get("torch_version"),
                  "cuda_distributions": cuda_distributions(details["facts"])},
        "installed": installed(env),  # pip freeze of the build env
    }
    plan: SidecarPlan = details["sidecar"]
    if options.tool == "nuitka":
        files: MaterializeReport | None = details.get("sidecar_files")
        sourceless: SourcelessReport | None = details.get("sidecar_sourceless")
        stripped: StripReport | None = details.get("sidecar_strip")
        record["sidecar"] = {
            "distributions": list(plan.distributions), "shared": list(plan.shared), "dropped": list(plan.dropped),
            "reasons": dict(plan.reasons),
            "stdlib_modules": list(inputs.stdlib_modules),
            "bytes": files.bytes if files else None, "trimmed_bytes": files.trimmed_bytes if files else None,
            "trimmed_files": files.trimmed_files if files else None,
            "per_distribution_bytes": files.per_distribution if files else None,
            "sourceless_files": sourceless.files if sourceless else None,
            "sourceless_bytes": sourceless.bytes if sourceless else None,
            "stripped_files": stripped.files if stripped else None,
            "stripped_bytes": stripped.saved if stripped else None,
            "strip_skipped": stripped.skipped if stripped else None,
            "strip_kept": stripped.kept if stripped else None,
        }
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
