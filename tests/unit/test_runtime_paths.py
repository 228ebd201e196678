"""Mode detection and path resolution for every packaging mode, with simulated markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import variants
from backend.runtime_paths import (
    DATA_DIR_ENV,
    RuntimeLayout,
    RuntimeMarkers,
    current_layout,
    default_data_dir,
    detect_mode,
)
from backend.variants import Variant

SOURCE = RuntimeMarkers(package_dir=Path("/src/repo/backend"), executable=Path("/usr/bin/python3"), argv0="-m")
NUITKA_STANDALONE = RuntimeMarkers(
    package_dir=Path("/opt/pe/peft_engine.dist/backend"), executable=Path("/opt/pe/peft_engine.dist/peft_engine"),
    argv0="/opt/pe/peft_engine.dist/peft_engine", nuitka_onefile=False,
    nuitka_containing_dir=Path("/opt/pe/peft_engine.dist"),
)
NUITKA_ONEFILE = RuntimeMarkers(
    package_dir=Path("/home/u/.cache/PEFT Studio/peft_engine/0.1.0/backend"),
    executable=Path("/home/u/.cache/PEFT Studio/peft_engine/0.1.0/peft_engine"),
    argv0="/home/u/Apps/peft_engine.bin", nuitka_onefile=True, nuitka_containing_dir=Path("/home/u/Apps"),
)
PYINSTALLER_ONEDIR = RuntimeMarkers(
    package_dir=Path("/opt/pe/peft_engine/_internal/backend"), executable=Path("/opt/pe/peft_engine/peft_engine"),
    argv0="/opt/pe/peft_engine/peft_engine", pyinstaller_meipass=Path("/opt/pe/peft_engine/_internal"),
)
PYINSTALLER_ONEFILE = RuntimeMarkers(
    package_dir=Path("/tmp/_MEIabc123/backend"), executable=Path("/home/u/Apps/peft_engine"),
    argv0="/home/u/Apps/peft_engine", pyinstaller_meipass=Path("/tmp/_MEIabc123"),
)
PYINSTALLER_MAC_APP = RuntimeMarkers(
    package_dir=Path("/Applications/PE.app/Contents/Frameworks/backend"),
    executable=Path("/Applications/PE.app/Contents/MacOS/peft_engine"), argv0="peft_engine",
    pyinstaller_meipass=Path("/Applications/PE.app/Contents/Frameworks"), platform="darwin",
)
PYINSTALLER_WINDOWS_ONEFILE = RuntimeMarkers(
    package_dir=Path("C:/Users/u/AppData/Local/Temp/_MEI42/backend"), executable=Path("C:/Apps/peft_engine.exe"),
    argv0="C:/Apps/peft_engine.exe", pyinstaller_meipass=Path("C:/Users/u/AppData/Local/Temp/_MEI42"),
    platform="win32",
)

CASES = [
    # markers, mode, resources dir, install dir
    (SOURCE, variants.SOURCE, "/src/repo/backend/resources", "/src/repo"),
    (NUITKA_STANDALONE, variants.NUITKA_STANDALONE, "/opt/pe/peft_engine.dist/backend/resources",
     "/opt/pe/peft_engine.dist"),
    (NUITKA_ONEFILE, variants.NUITKA_ONEFILE, "/home/u/.cache/PEFT Studio/peft_engine/0.1.0/backend/resources",
     "/home/u/Apps"),
    (PYINSTALLER_ONEDIR, variants.PYINSTALLER_ONEDIR, "/opt/pe/peft_engine/_internal/backend/resources",
     "/opt/pe/peft_engine"),
    (PYINSTALLER_ONEFILE, variants.PYINSTALLER_ONEFILE, "/tmp/_MEIabc123/backend/resources", "/home/u/Apps"),
    (PYINSTALLER_MAC_APP, variants.PYINSTALLER_ONEDIR, "/Applications/PE.app/Contents/Frameworks/backend/resources",
     "/Applications/PE.app/Contents/MacOS"),
    (PYINSTALLER_WINDOWS_ONEFILE, variants.PYINSTALLER_ONEFILE,
     "C:/Users/u/AppData/Local/Temp/_MEI42/backend/resources", "C:/Apps"),
]


@pytest.mark.parametrize(("markers", "mode", "resources", "install"), CASES, ids=lambda v: v.name if isinstance(v, Variant) else None)
def test_layout_per_mode(markers: RuntimeMarkers, mode: Variant, resources: str, install: str) -> None:
    layout = RuntimeLayout.from_markers(markers)
    assert detect_mode(markers) is mode
    assert layout.resources == Path(resources)
    assert layout.install == Path(install)
    assert mode.frozen is (mode is not variants.SOURCE)
    assert layout.mode in variants.VARIANTS


def test_sidecar_candidates_cover_payload_and_install_dir() -> None:
    layout = RuntimeLayout.from_markers(NUITKA_ONEFILE)
    assert layout.sidecars == (
        Path("/home/u/.cache/PEFT Studio/peft_engine/0.1.0/ml_sidecar"), Path("/home/u/Apps/ml_sidecar"),
    )
    assert RuntimeLayout.from_markers(NUITKA_STANDALONE).sidecars == (Path("/opt/pe/peft_engine.dist/ml_sidecar"),)


@pytest.mark.parametrize("markers", [NUITKA_STANDALONE, PYINSTALLER_ONEDIR])
def test_folder_builds_refuse_a_data_dir_inside_their_folder(markers: RuntimeMarkers) -> None:
    layout = RuntimeLayout.from_markers(markers)
    with pytest.raises(ValueError, match="--data-dir"):
        layout.check_data_dir(layout.install / "data")
    with pytest.raises(ValueError, match="install folder"):
        layout.check_data_dir(layout.bundle / "state")
    layout.check_data_dir(Path("/var/lib/somewhere-else"))


@pytest.mark.parametrize("markers", [NUITKA_ONEFILE, PYINSTALLER_ONEFILE, PYINSTALLER_WINDOWS_ONEFILE])
def test_a_onefile_refuses_only_its_unpack_dir(markers: RuntimeMarkers) -> None:
    """The folder that holds a onefile is the user's (home, Desktop, Downloads): data may live under it,
    as the per-user default does when the file sits in the home folder."""
    layout = RuntimeLayout.from_markers(markers)
    with pytest.raises(ValueError, match="unpack folder"):
        layout.check_data_dir(layout.bundle / "data")
    layout.check_data_dir(layout.install / ".local" / "share" / "peft_engine")
    layout.check_data_dir(layout.install)


def test_a_onefile_in_the_home_folder_accepts_the_default_data_dir() -> None:
    home_onefile = RuntimeMarkers(
        package_dir=Path("/home/u/.cache/PEFT Studio/peft_engine/0.1.0/backend"),
        executable=Path("/home/u/.cache/PEFT Studio/peft_engine/0.1.0/peft_engine"),
        argv0="/home/u/peft_engine", nuitka_onefile=True, nuitka_containing_dir=Path("/home/u"),
    )
    RuntimeLayout.from_markers(home_onefile).check_data_dir(Path("/home/u/.local/share/peft_engine"))


def test_source_allows_any_data_dir() -> None:
    RuntimeLayout.from_markers(SOURCE).check_data_dir(Path("/src/repo/data"))


def test_data_dir_env_override_and_platform_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_data_dir(environ={DATA_DIR_ENV: str(tmp_path)}) == tmp_path
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir(platform="linux", environ={}) == tmp_path / "xdg" / "peft_engine"


def test_current_process_is_source_mode() -> None:
    layout = current_layout()
    assert layout.mode is variants.SOURCE
    assert (layout.resources / "defaults.json").is_file()
