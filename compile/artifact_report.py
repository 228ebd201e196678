"""``python -m compile report ARTIFACT``: what went into a build, from its build.json and Nuitka's report."""

from __future__ import annotations

from pathlib import Path

from compile.artifacts import Artifact
from compile.nuitka_report import parse_report
from compile.results import tree_size

REPORT_COPY = "compilation-report.xml"


def largest_entries(folder: Path, count: int = 12) -> list[tuple[str, int]]:
    """Top-level entries of the artifact folder (and of its sidecar) by bytes on disk."""
    sizes = []
    for entry in folder.iterdir():
        if entry.name == "ml_sidecar" and entry.is_dir():
            sizes += [(f"ml_sidecar/{sub.name}", tree_size(sub)) for sub in entry.iterdir()]
        else:
            sizes.append((entry.name, tree_size(entry)))
    return sorted(sizes, key=lambda item: -item[1])[:count]


def render_report(artifact: Artifact, *, modules: bool = False) -> str:
    record = artifact.record
    mib = 1024**2
    lines = [
        f"{record['variant']} ({record['tool']} {record['tool_version']}, Python {record['python']}, "
        f"{record['platform']}/{record['machine']}, commit {str(record.get('commit'))[:10]})",
        f"  executable  {artifact.executable}",
        f"  size        {record['size_bytes'] / mib:.1f} MiB",
        f"  build time  {record['wall_seconds']:.0f}s wall, tool {record['tool_wall_seconds']:.0f}s wall / "
        f"{record['tool_cpu_seconds']:.0f}s CPU",
    ]
    summary = record.get("nuitka_report")
    if summary:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(summary["modules_by_kind"].items()))
        cache = summary["ccache"]
        lines.append(f"  modules     {kinds}")
        lines.append(f"  ccache      {cache['hits']} hits / {cache['misses']} misses")
        biggest = sorted(summary["compiled_by_package"].items(), key=lambda item: -item[1])[:10]
        top = ", ".join(f"{name} {count}" for name, count in biggest)
        lines.append(f"  C-compiled  {top}")
    sidecar = record.get("sidecar")
    if sidecar:
        lines.append(f"  sidecar     {len(sidecar['distributions'])} distributions; shared with the binary: "
                     f"{', '.join(sidecar['shared']) or '-'}")
        for name in sidecar["distributions"]:
            size = (sidecar.get("per_distribution_bytes") or {}).get(name)
            size_text = f"{size / mib:8.1f} MiB" if size is not None else ""
            lines.append(f"     {name:<22}{size_text}  ({sidecar['reasons'].get(name, '')})")
        if sidecar.get("trimmed_bytes") is not None:
            lines.append(f"  trimmed     {sidecar['trimmed_bytes'] / mib:.1f} MiB in {sidecar['trimmed_files']} files "
                         f"(tests, headers, stubs)")
        if sidecar.get("stripped_files"):
            lines.append(f"  stripped    {sidecar['stripped_bytes'] / mib:.1f} MiB of symbol tables from "
                         f"{sidecar['stripped_files']} libraries")
        if sidecar.get("sourceless_files"):
            lines.append(f"  sourceless  {sidecar['sourceless_bytes'] / mib:.1f} MiB of sources in "
                         f"{sidecar['sourceless_files']} files not shipped: bytecode only")
        count = len(sidecar["stdlib_modules"])
        lines.append(f"  stdlib      {count} standard-library modules included for the sidecar")
    if not artifact.variant.onefile:
        lines.append("  largest:")
        lines += [f"     {name:<40}{size / mib:8.1f} MiB" for name, size in largest_entries(artifact.executable.parent)]
    report_path = artifact.folder / REPORT_COPY
    if report_path.is_file():
        report = parse_report(report_path)
        lines.append(f"  data files  {len(report.data_files)} (from Nuitka's report)")
        if modules:
            lines.append("  modules (kind, why it came in):")
            ordered = sorted(report.modules, key=lambda m: m.name)
            lines += [f"     {m.kind:<10} {m.name:<60} {m.reason}" for m in ordered]
    return "\n".join(lines)
