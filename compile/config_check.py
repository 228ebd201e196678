"""After a build: every tuning entry of ``[tool.compile]`` must still match something.

``bytecode-modules`` lists modules and namespaces by name; a package may rename one in a minor
release, and the entry then silently stops doing anything (the module is compiled again, the memory
it saved comes back). Each entry is checked against what the build actually did: Nuitka's report
(which modules are bytecode, which are included), the installed distributions (does an excluded
module exist at all?), the sidecar plan and the trim counts. An entry that matches nothing fails the
build, naming the key and the entry.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from compile.nuitka_report import NuitkaReport
from compile.options import BuildOptions
from compile.sidecar import MaterializeReport, SidecarPlan, canonical, closure


@dataclass(frozen=True)
class StaleEntry:
    key: str
    entry: str
    why: str

    def __str__(self) -> str:
        return f"{self.key}: '{self.entry}' {self.why}"


def installed_modules(facts: Mapping[str, Any]) -> set[str]:
    """Every importable module and package name the build env's distributions installed."""
    names: set[str] = set()
    for info in facts["distributions"].values():
        for text in info["files"]:
            path = PurePosixPath(text)
            if not path.parts or path.parts[0].endswith((".dist-info", ".data")) or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py":
                parts = path.with_suffix("").parts
            elif path.suffix in (".so", ".pyd"):
                parts = (*path.parts[:-1], path.name.split(".")[0])
            else:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for depth in range(1, len(parts) + 1):
                names.add(".".join(parts[:depth]))
    return names


def stale_entries(options: BuildOptions, facts: Mapping[str, Any], plan: SidecarPlan | None,
                  report: NuitkaReport | None, files: MaterializeReport | None) -> list[StaleEntry]:
    problems: list[StaleEntry] = []
    modules = installed_modules(facts)
    for name in options.exclude_modules:
        if name not in modules and name.split(".")[0] not in sys.stdlib_module_names:
            problems.append(StaleEntry("exclude-modules", name, "is not a module of any installed distribution"))
    if report is not None:
        kinds = {module.name: module.kind for module in report.modules}
        absent = "is not in the build (Nuitka's report has no such module)"
        for key, names in (("bytecode-modules", options.bytecode_modules),
                           ("bytecode-packages", options.bytecode_packages)):
            problems += [StaleEntry(key, name, why) for name in names
                         if (why := _not_demoted(name, kinds, absent)) is not None]
        problems += [StaleEntry("include-modules", name, absent) for name in options.include_modules
                     if name not in kinds]
    if plan is not None:
        dists = facts["distributions"]
        reachable = closure(options.sidecar_roots, dists)
        for name in options.sidecar_exclude:
            if canonical(name) not in dists:
                problems.append(StaleEntry("sidecar-exclude", name, "is not an installed distribution"))
            elif canonical(name) not in reachable:
                problems.append(StaleEntry("sidecar-exclude", name, "is not required by any sidecar root"))
        for name in options.sidecar_keep_sources:
            if canonical(name) not in plan.distributions:
                problems.append(StaleEntry("sidecar-keep-sources", name, "is not a sidecar distribution"))
    if files is not None:
        for pattern in options.sidecar_trim:
            if not files.trimmed_by_pattern.get(pattern):
                problems.append(StaleEntry("sidecar-trim", pattern, "matched no file of the sidecar"))
    return problems


def _not_demoted(name: str, kinds: Mapping[str, str], absent: str) -> str | None:
    """Why the module or namespace ``name`` is not bytecode in the build (None: it is, every module of it)."""
    inside = {module: kind for module, kind in kinds.items()
              if (module == name or module.startswith(name + ".")) and kind != "namespace"}
    compiled = sorted(module for module, kind in inside.items() if kind == "compiled")
    if not inside:
        return absent
    if compiled:
        return f"has modules built as compiled: {', '.join(compiled[:5])}"
    return None
