"""Read Nuitka's ``--report`` XML: modules by kind and why each came in, ccache hits, data files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def module_kind(class_name: str) -> str:
    """Nuitka's module class name → ``compiled`` / ``bytecode`` / ``extension`` / ``namespace`` (a
    namespace package has no code: Nuitka reports it as compiled whatever its modules are)."""
    if class_name.endswith("NamespacePackage"):
        return "namespace"
    if class_name.startswith("Compiled") or class_name == "PythonMainModule":
        return "compiled"
    if class_name.startswith("Uncompiled"):
        return "bytecode"
    if "Extension" in class_name:
        return "extension"
    return class_name


@dataclass
class ModuleEntry:
    name: str
    kind: str
    reason: str
    distribution: str | None
    ccache: str | None  # "cache hit", "cache miss" or None (not compiled here)
    object_bytes: int | None


@dataclass
class NuitkaReport:
    modules: list[ModuleEntry] = field(default_factory=list)
    data_files: list[dict[str, str]] = field(default_factory=list)
    nuitka_version: str | None = None

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(module.kind for module in self.modules))

    def ccache(self) -> dict[str, Any]:
        results = Counter(module.ccache for module in self.modules if module.ccache)
        hits, misses = results.get("cache hit", 0), results.get("cache miss", 0)
        total = hits + misses
        return {"hits": hits, "misses": misses, "hit_rate": round(hits / total, 4) if total else None}

    def top_level(self, kind: str) -> dict[str, int]:
        return dict(Counter(m.name.split(".")[0] for m in self.modules if m.kind == kind).most_common())

    def summary(self) -> dict[str, Any]:
        return {
            "nuitka_version": self.nuitka_version,
            "modules_by_kind": self.by_kind(),
            "compiled_by_package": self.top_level("compiled"),
            "ccache": self.ccache(),
            "data_files": len(self.data_files),
        }


def parse_report(path: Path) -> NuitkaReport:
    root = ET.parse(path).getroot()
    report = NuitkaReport(nuitka_version=root.get("nuitka_version"))
    for node in root.iter("module"):
        cache = node.find("c-compilation-resources/c-cache")
        size = node.find("c-compilation-resources/object-file")
        report.modules.append(ModuleEntry(
            name=node.get("name", ""),
            kind=module_kind(node.get("kind", "")),
            reason=node.get("reason", ""),
            distribution=node.get("distribution"),
            ccache=cache.get("result") if cache is not None and cache.get("tech") == "ccache" else None,
            object_bytes=int(size.get("size", "0")) if size is not None else None,
        ))
    for node in root.iter("data_file"):
        report.data_files.append({"name": node.get("name", ""), "size": node.get("size", "0"),
                                  "reason": node.get("reason", "")})
    return report
