"""Per-platform flags for both tools: a Protocol and a registry keyed by platform name."""

from __future__ import annotations

from typing import Final, Protocol

from compile.options import BuildOptions, PlatformName
from compile.platforms import linux, macos, windows


class PlatformModule(Protocol):
    def nuitka_flags(self, options: BuildOptions) -> list[str]: ...

    def pyinstaller_flags(self, options: BuildOptions) -> list[str]: ...

    def required_tools(self, options: BuildOptions) -> list[str]: ...


PLATFORM_MODULES: Final[dict[PlatformName, PlatformModule]] = {
    "linux": linux,
    "macos": macos,
    "windows": windows,
}


def platform_module(name: PlatformName) -> PlatformModule:
    return PLATFORM_MODULES[name]
