"""Linux: patchelf for standalone builds; an optional PNG icon for the onefile."""

from __future__ import annotations

from compile.options import BuildOptions


def nuitka_flags(options: BuildOptions) -> list[str]:
    flags = []
    if options.icon and options.onefile:
        flags.append(f"--linux-icon={options.root / options.icon}")
    return flags


def pyinstaller_flags(options: BuildOptions) -> list[str]:
    return ["--strip"]  # as Nuitka strips its binaries: compare like with like


def required_tools(options: BuildOptions) -> list[str]:
    return ["patchelf"] if options.tool == "nuitka" else []
