"""Where the backend runs from and where it may read and write, in every packaging mode.

Five modes: running from source, a Nuitka standalone folder, a Nuitka onefile, a PyInstaller onedir and
a PyInstaller onefile, each frozen one with the CPU or the CUDA build of torch. Detection reads *markers*
(Nuitka's ``__compiled__``, PyInstaller's ``sys.frozen`` and ``sys._MEIPASS``, the executable path, the
file a CUDA build carries) gathered once by :func:`current_markers`; everything else is a pure function
of those markers, so tests simulate every mode without building anything.

Two kinds of location come out of it:
- read-only bundled resources (presets, the sample dataset, the tiny model) and the ML *sidecar*
  folder of packages kept out of the compiled binary;
- a per-user writable data dir (``platformdirs``), never inside the install dir or a onefile unpack
  dir, which may be read-only or deleted when the program exits.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from backend.variants import (
    NUITKA_ONEFILE,
    NUITKA_STANDALONE,
    PYINSTALLER_ONEDIR,
    PYINSTALLER_ONEFILE,
    SOURCE,
    TORCH_FLAVOURS,
    Variant,
    flavoured,
)

APP_NAME = "peft_engine"
APP_AUTHOR = "PEFT Studio"
DATA_DIR_ENV = "PEFT_ENGINE_DATA_DIR"
SIDECAR_DIR_NAME = "ml_sidecar"
TORCH_FLAVOUR_FILE = "torch-flavour"  # in resources/ of a build whose torch is not the CPU one


@dataclass(frozen=True, kw_only=True)
class RuntimeMarkers:
    """Everything mode detection looks at; :func:`current_markers` reads them from the live process."""

    package_dir: Path  # folder of the ``backend`` package as the importer sees it (``__file__``)
    executable: Path  # sys.executable
    argv0: str
    nuitka_onefile: bool | None = None  # None: not compiled by Nuitka
    nuitka_containing_dir: Path | None = None
    pyinstaller_meipass: Path | None = None  # None: not frozen by PyInstaller
    platform: str = sys.platform
    torch_flavour: str = "cpu"  # what the build's resources/torch-flavour names (source: cpu)


def current_markers() -> RuntimeMarkers:
    compiled = globals().get("__compiled__")  # set by Nuitka in every compiled module
    meipass = getattr(sys, "_MEIPASS", None) if getattr(sys, "frozen", False) else None
    markers = RuntimeMarkers(
        package_dir=Path(__file__).resolve().parent,
        executable=Path(sys.executable),
        argv0=sys.argv[0] if sys.argv else "",
        nuitka_onefile=bool(compiled.onefile) if compiled is not None else None,
        nuitka_containing_dir=Path(compiled.containing_dir) if compiled is not None else None,
        pyinstaller_meipass=Path(meipass) if meipass else None,
    )
    if compiled is None and meipass is None:
        return markers
    try:
        flavour = (resources_dir(markers) / TORCH_FLAVOUR_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return markers  # no marker: the CPU build
    return replace(markers, torch_flavour=flavour if flavour in TORCH_FLAVOURS else "cpu")


def detect_mode(markers: RuntimeMarkers) -> Variant:
    """Which of the variants in :mod:`backend.variants` this process is."""
    return flavoured(packaging(markers), markers.torch_flavour)


def packaging(markers: RuntimeMarkers) -> Variant:
    """The packaging this process runs from, with the CPU flavour."""
    if markers.nuitka_onefile is not None:
        return NUITKA_ONEFILE if markers.nuitka_onefile else NUITKA_STANDALONE
    if markers.pyinstaller_meipass is not None:
        exe_dir = markers.executable.parent
        meipass = markers.pyinstaller_meipass
        # onedir unpacks nothing: _MEIPASS is the exe's folder or its `_internal/`, or, in a macOS .app,
        # Contents/Frameworks. A onefile unpacks to a fresh temp folder elsewhere.
        inside = meipass == exe_dir or exe_dir in meipass.parents
        mac_bundle = markers.platform == "darwin" and meipass == exe_dir.parent / "Frameworks"
        return PYINSTALLER_ONEDIR if inside or mac_bundle else PYINSTALLER_ONEFILE
    return SOURCE


def bundle_root(markers: RuntimeMarkers) -> Path:
    """The folder that holds the ``backend`` package's data files in this mode."""
    if markers.pyinstaller_meipass is not None:
        return markers.pyinstaller_meipass
    # Source and Nuitka (standalone and onefile alike) place data next to the package's modules:
    # Nuitka sets a compiled module's __file__ to <dist or unpack dir>/backend/<module>.py.
    return markers.package_dir.parent


def resources_dir(markers: RuntimeMarkers) -> Path:
    return bundle_root(markers) / "backend" / "resources"


def install_dir(markers: RuntimeMarkers) -> Path:
    """The user-facing install folder: where the executable (or the onefile) lives."""
    if markers.nuitka_containing_dir is not None:
        return markers.nuitka_containing_dir
    if markers.pyinstaller_meipass is None:  # source
        return markers.package_dir.parent
    # PyInstaller (onedir and onefile alike) sets sys.executable to the user-facing executable.
    return markers.executable.parent


def sidecar_dirs(markers: RuntimeMarkers) -> list[Path]:
    """Folders that may hold the heavy ML packages kept out of the compiled binary, in search order.

    Standalone builds carry the sidecar next to the executable; onefile builds carry it inside the
    payload (unpacked next to the package) or next to the onefile itself.
    """
    candidates = [bundle_root(markers) / SIDECAR_DIR_NAME, install_dir(markers) / SIDECAR_DIR_NAME]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def default_data_dir(platform: str = sys.platform, environ: dict[str, str] | None = None) -> Path:
    """Per-user writable data dir: XDG on Linux, Application Support on macOS, AppData on Windows."""
    env = os.environ if environ is None else environ
    override = env.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs  # small; imported here so detection stays importable without it

    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR, roaming=platform == "win32"))


def is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


@dataclass(frozen=True, kw_only=True)
class RuntimeLayout:
    mode: Variant
    bundle: Path  # the folder holding the package's data files: the build's folder, or a onefile's unpack dir
    resources: Path
    install: Path  # the folder holding the executable (a onefile's: wherever the user put the file)
    sidecars: tuple[Path, ...]

    @classmethod
    def from_markers(cls, markers: RuntimeMarkers) -> RuntimeLayout:
        return cls(
            mode=detect_mode(markers),
            bundle=bundle_root(markers),
            resources=resources_dir(markers),
            install=install_dir(markers),
            sidecars=tuple(sidecar_dirs(markers)),
        )

    def owned_folders(self) -> dict[str, Path]:
        """The folders a frozen build owns, which may be read-only, replaced by an update or (a
        onefile's unpack dir) deleted at exit: never a place for user data. A onefile's own folder is
        not one of them: it is wherever the user put the file (home, Desktop, Downloads, a USB stick)."""
        if not self.mode.frozen:
            return {}
        if self.mode.onefile:
            return {"unpack": self.bundle}
        return {"install": self.install, "bundle": self.bundle}

    def check_data_dir(self, data_dir: Path) -> None:
        """Refuse a data dir inside a folder the build owns (see :meth:`owned_folders`)."""
        for kind, folder in self.owned_folders().items():
            if is_inside(data_dir, folder):
                raise ValueError(
                    f"data dir {data_dir} is inside the {self.mode.name} {kind} folder {folder}, "
                    f"which may be read-only or deleted at exit; pass --data-dir or set {DATA_DIR_ENV} "
                    "to a per-user folder"
                )


def current_layout() -> RuntimeLayout:
    return RuntimeLayout.from_markers(current_markers())
