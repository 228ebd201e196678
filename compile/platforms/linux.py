"""Linux: patchelf for standalone builds; an optional PNG icon for the onefile."""

from __future__ import annotations

from compile.options import BuildOptions


def nuitka_flags(options: BuildOptions) -> list[str]:
    flags = []
    if options.icon and options.onefile:
        flags.append(f"--linux-icon={options.root / options.icon}")
    return flags


def pyinstaller_flags(options: BuildOptions) -> list[str]:
    # Not --strip: stripping the auditwheel-repaired libraries of wheels (numpy.libs' OpenBLAS) breaks
    # them at load time ("ELF load command address/offset not page-aligned"); seen with numpy 2.4.
    return []


def required_tools(options: BuildOptions) -> list[str]:
    return ["patchelf"] if options.tool == "nuitka" else []
