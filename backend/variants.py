"""The ways the backend runs, declared once: five packagings with the CPU build of torch, and the
four frozen ones again with its CUDA build (a *torch flavour*, ``[tool.compile] torch``).

Every other list of variants is derived from here: the mode a running backend reports
(:mod:`backend.runtime_paths`), what ``python -m compile`` builds, what the benchmarks measure, and
what the HTTP behaviour suite runs against. Adding a variant here is the whole declaration.
:data:`VARIANTS` are the five every benchmark run and CI measure; :data:`ALL` adds the CUDA flavour,
built and measured when asked for (``python -m compile standalone --torch cuda``, the nightly job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Tool = Literal["python", "nuitka", "pyinstaller"]
TorchFlavour = Literal["cpu", "cuda"]
TORCH_FLAVOURS: Final[tuple[TorchFlavour, ...]] = ("cpu", "cuda")


@dataclass(frozen=True)
class Variant:
    name: str
    tool: Tool
    onefile: bool  # one self-extracting file: a bootstrap process plus the server it unpacks and starts
    build_args: tuple[str, ...]  # ``python -m compile <args>`` builds it; empty for source
    torch: TorchFlavour = "cpu"  # which build of torch it ships (source: whatever is installed)

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
CUDA_VARIANTS: Final[tuple[Variant, ...]] = tuple(
    Variant(f"{base.name}-cuda", base.tool, base.onefile, (*base.build_args, "--torch", "cuda"), "cuda")
    for base in VARIANTS if base.frozen
)
ALL: Final[tuple[Variant, ...]] = VARIANTS + CUDA_VARIANTS
NAMES: Final[tuple[str, ...]] = tuple(variant.name for variant in VARIANTS)
ALL_NAMES: Final[tuple[str, ...]] = tuple(variant.name for variant in ALL)
BUILT: Final[tuple[Variant, ...]] = tuple(variant for variant in VARIANTS if variant.frozen)
ALL_BUILT: Final[tuple[Variant, ...]] = tuple(variant for variant in ALL if variant.frozen)
BUILT_NAMES: Final[tuple[str, ...]] = tuple(variant.name for variant in ALL_BUILT)


def variant_named(name: str) -> Variant:
    """The variant called ``name``; ValueError listing the valid names otherwise."""
    for variant in ALL:
        if variant.name == name:
            return variant
    raise ValueError(f"unknown variant {name!r}: use one of {', '.join(ALL_NAMES)}")


def flavoured(variant: Variant, torch: str) -> Variant:
    """The same packaging with the given torch flavour: (nuitka-standalone, cuda) → nuitka-standalone-cuda."""
    if torch not in TORCH_FLAVOURS:
        raise ValueError(f"unknown torch flavour {torch!r}: use one of {', '.join(TORCH_FLAVOURS)}")
    if not variant.frozen:
        return variant
    base = variant.name.removesuffix("-cuda")
    return variant_named(base if torch == "cpu" else f"{base}-cuda")
