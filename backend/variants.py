"""The five ways the backend runs, declared once.

Every other list of variants is derived from :data:`VARIANTS`: the mode a running backend reports
(:mod:`backend.runtime_paths`), what ``python -m compile`` builds, what the benchmarks measure, and
what the HTTP behaviour suite runs against. Adding a variant here is the whole declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Tool = Literal["python", "nuitka", "pyinstaller"]


@dataclass(frozen=True)
class Variant:
    name: str
    tool: Tool
    onefile: bool  # one self-extracting file: a bootstrap process plus the server it unpacks and starts
    build_args: tuple[str, ...]  # ``python -m compile <args>`` builds it; empty for source

    @property
    def frozen(self) -> bool:
        """Built into an executable (anything but source)."""
        return self.tool != "python"

    @property
    def build_command(self) -> str:
        return "python -m compile " + " ".join(self.build_args) if self.build_args else "(runs from source)"

    def __str__(self) -> str:
        return self.name


SOURCE: Final = Variant("source", "python", False, ())
NUITKA_STANDALONE: Final = Variant("nuitka-standalone", "nuitka", False, ("standalone",))
NUITKA_ONEFILE: Final = Variant("nuitka-onefile", "nuitka", True, ("onefile",))
PYINSTALLER_ONEDIR: Final = Variant("pyinstaller-onedir", "pyinstaller", False, ("pyinstaller", "--onedir"))
PYINSTALLER_ONEFILE: Final = Variant("pyinstaller-onefile", "pyinstaller", True, ("pyinstaller", "--onefile"))

VARIANTS: Final[tuple[Variant, ...]] = (
    SOURCE, NUITKA_STANDALONE, NUITKA_ONEFILE, PYINSTALLER_ONEDIR, PYINSTALLER_ONEFILE,
)
NAMES: Final[tuple[str, ...]] = tuple(variant.name for variant in VARIANTS)
BUILT: Final[tuple[Variant, ...]] = tuple(variant for variant in VARIANTS if variant.frozen)
BUILT_NAMES: Final[tuple[str, ...]] = tuple(variant.name for variant in BUILT)


def variant_named(name: str) -> Variant:
    """The variant called ``name``; ValueError listing the valid names otherwise."""
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise ValueError(f"unknown variant {name!r}: use one of {', '.join(NAMES)}")
