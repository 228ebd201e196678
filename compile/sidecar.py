"""The ML sidecar: torch / transformers / peft and their dependencies, shipped as installed packages in
a folder next to the compiled binary instead of being compiled (see docs/developer-guide/sidecar.md).

Planning is pure (:func:`plan_sidecar` over the facts :mod:`compile.probe` printed in the build env):

- *compiled side*: the distributions the backend imports (every ``import`` in ``backend/``, lazy ones
  included, as Nuitka would follow them), minus the sidecar roots, and all they require;
- *sidecar*: everything the sidecar roots require (from ``importlib.metadata``), minus the compiled
  side and ``sidecar-exclude``;
- *dropped*: required only through ``sidecar-exclude`` (huggingface_hub's CLI): shipped nowhere and
  never followed;
- *shared*: required by both. They stay compiled and are included **whole** (a package partly compiled
  into the binary cannot gain submodules from the sidecar); their metadata is copied to the sidecar
  so version checks (``importlib.metadata.version``) in transformers still work.

:func:`materialize` copies the files each sidecar distribution installed, drops what never runs (tests,
headers, type stubs) and reports the bytes saved; the runner then byte-compiles the folder, because an
install folder may be read-only and Python would otherwise recompile torch on every start.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import shutil
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from compile.errors import ConfigError

SIDECAR_DIR_NAME = "ml_sidecar"  # must match backend.runtime_paths.SIDECAR_DIR_NAME


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class SidecarPlan:
    distributions: tuple[str, ...]
    shared: tuple[str, ...]
    compiled_side: tuple[str, ...]
    nofollow_imports: tuple[str, ...]
    complete_packages: tuple[str, ...]  # import names of shared distributions: --include-package
    reasons: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()  # needed only by excluded distributions: neither shipped nor compiled
    dropped_imports: tuple[str, ...] = ()  # their import names: PyInstaller excludes them too


def closure(
    roots: Iterable[str], dists: Mapping[str, Mapping[str, Any]], prune: Iterable[str] = ()
) -> dict[str, str]:
    """Every distribution reachable from ``roots`` through requirements → why it is there; ``prune``
    names distributions neither included nor traversed."""
    reasons: dict[str, str] = {}
    pruned = {canonical(name) for name in prune}
    queue = deque((canonical(root), "root") for root in roots)
    while queue:  # breadth first: each reason is a shortest path from a root
        name, why = queue.popleft()
        if name in reasons or name not in dists or name in pruned:
            continue
        reasons[name] = why
        queue.extend((requirement, f"required by {name}") for requirement in dists[name]["requires"])
    return reasons


def plan_sidecar(
    facts: Mapping[str, Any], roots: Iterable[str], exclude: Iterable[str] = ()
) -> SidecarPlan:
    dists: Mapping[str, Mapping[str, Any]] = facts["distributions"]
    roots = [canonical(root) for root in roots]
    missing = [root for root in roots if root not in dists]
    if missing:
        raise ConfigError(
            f"sidecar root(s) {', '.join(missing)} are not installed in the build environment",
            hint="add them to [project].dependencies or fix 'sidecar-roots' in [tool.compile]",
        )
    owners = {top: name for name, info in dists.items() for top in info["imports"]}
    root_imports = {top for root in roots for top in dists[root]["imports"]}
    backend_dists = {owners[name] for name in facts["backend_imports"] if name in owners and name not in root_imports}
    compiled = closure(sorted(backend_dists), dists)
    heavy = closure(roots, dists, prune=exclude)
    sidecar = sorted(name for name in heavy if name not in compiled)
    # What only the excluded distributions need is installed in the build env but shipped nowhere:
    # Nuitka must not follow it either (an optional `import pygments` somewhere would compile 300 modules).
    dropped = sorted(name for name in closure(exclude, dists) if name not in compiled and name not in heavy)
    shared = sorted(name for name in heavy if name in compiled)
    nofollow = sorted({top for name in (*sidecar, *dropped) for top in dists[name]["imports"]
                       if not top.endswith(".libs")})
    dropped_imports = sorted({top for name in dropped for top in dists[name]["imports"] if not top.endswith(".libs")})
    complete = sorted({top for name in shared for top in dists[name]["imports"] if not top.endswith(".libs")})
    return SidecarPlan(
        distributions=tuple(sidecar), shared=tuple(shared), compiled_side=tuple(sorted(compiled)),
        nofollow_imports=tuple(nofollow), complete_packages=tuple(complete),
        reasons={name: heavy[name] for name in sidecar}, dropped=tuple(dropped),
        dropped_imports=tuple(dropped_imports),
    )


def trimmed(relative: PurePosixPath, patterns: Iterable[str]) -> str | None:
    """The pattern that drops a file, or None: a pattern with a ``/`` is a path relative to the
    sidecar, a folder or a file (``torch/test``, ``torch/lib/libx.so``) or, with wildcards, files
    (``torch/bin/test_*``); one with wildcards only matches the file name anywhere; any other names a
    folder anywhere on the path."""
    for pattern in patterns:
        wildcards = any(char in pattern for char in "*?[")
        if "/" in pattern and wildcards:
            if fnmatch.fnmatchcase(relative.as_posix(), pattern.strip("/")):
                return pattern
        elif "/" in pattern:
            path = pattern.strip("/")
            if relative.as_posix() == path or relative.as_posix().startswith(path + "/"):
                return pattern
        elif wildcards:
            if fnmatch.fnmatch(relative.name, pattern):
                return pattern
        elif pattern in relative.parts[:-1]:
            return pattern
    return None


@dataclass
class MaterializeReport:
    files: int = 0
    bytes: int = 0
    trimmed_files: int = 0
    trimmed_bytes: int = 0
    per_distribution: dict[str, int] = field(default_factory=dict)
    trimmed_by_pattern: dict[str, int] = field(default_factory=dict)  # files each sidecar-trim pattern dropped


def copy_record(source: Path, target: Path) -> None:
    """A distribution's ``RECORD`` without its entries outside the package (``../../../bin/tqdm``): the
    console scripts, which are not shipped and whose hashes cover a shebang naming the build env's
    folder, so that a change to any pin changed one file in every distribution with a script (measured:
    11 layers "changed" for a starlette downgrade, the torch layer among them)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(line for line in lines if not line.startswith("../")), encoding="utf-8")
    shutil.copystat(source, target)


def materialize(
    plan: SidecarPlan, facts: Mapping[str, Any], destination: Path, trim: Iterable[str]
) -> MaterializeReport:
    """Copy the sidecar distributions' files (and the shared ones' metadata) into ``destination``."""
    dists = facts["distributions"]
    trim = tuple(trim)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    report = MaterializeReport()
    for name in (*plan.distributions, *plan.shared):
        info = dists[name]
        location = Path(info["location"])
        metadata_only = name in plan.shared
        copied = 0
        for text in info["files"]:
            relative = PurePosixPath(text)
            if "__pycache__" in relative.parts or relative.suffix == ".pyc":
                continue  # regenerated by byte-compiling the whole folder
            is_metadata = relative.parts[0].endswith(".dist-info")
            if metadata_only and not is_metadata:
                continue
            source = location / relative
            if not source.is_file():
                continue
            size = source.stat().st_size
            pattern = None if is_metadata else trimmed(relative, trim)
            if pattern is not None:
                report.trimmed_by_pattern[pattern] = report.trimmed_by_pattern.get(pattern, 0) + 1
                report.trimmed_files += 1
                report.trimmed_bytes += size
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_metadata and relative.name == "RECORD":
                copy_record(source, target)
            else:
                shutil.copy2(source, target)
            report.files += 1
            report.bytes += size
            copied += size
        report.per_distribution[name] = copied
    return report


@dataclass
class SourcelessReport:
    files: int = 0
    bytes: int = 0  # of the sources removed
    kept: int = 0  # sources without a compiled file (not Python 3 syntax): shipped as they are


def drop_sources(
    plan: SidecarPlan, facts: Mapping[str, Any], destination: Path, keep: Iterable[str]
) -> SourcelessReport:
    """After byte-compiling: ship the distributions not in ``keep`` as bytecode only, each
    ``__pycache__/m.<tag>.pyc`` moved to ``m.pyc`` in place of ``m.py``, which Python imports without
    the source (as PyInstaller ships every package but those its hooks keep sources for). Tracebacks
    from them show no source lines; ``inspect.getsource`` fails there, which is why torch and
    transformers (TorchScript, docstring tools) keep theirs."""
    kept = {canonical(name) for name in keep}
    report = SourcelessReport()
    for name in plan.distributions:
        if name in kept:
            continue
        for text in facts["distributions"][name]["files"]:
            relative = PurePosixPath(text)
            source = destination / relative
            if relative.suffix != ".py" or relative.parts[0].endswith(".dist-info") or not source.is_file():
                continue
            compiled = list((source.parent / "__pycache__").glob(f"{glob.escape(source.stem)}.*.pyc"))
            if len(compiled) != 1:
                report.kept += 1
                continue
            report.files += 1
            report.bytes += source.stat().st_size
            compiled[0].replace(source.with_suffix(".pyc"))
            source.unlink()
    for cache in sorted(destination.rglob("__pycache__"), reverse=True):
        if cache.is_dir() and not any(cache.iterdir()):
            cache.rmdir()
    return report

