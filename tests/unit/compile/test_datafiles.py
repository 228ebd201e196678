from __future__ import annotations

import json
from pathlib import Path

import pytest

from compile.datafiles import glob_base, load_manifest, manifest, nuitka_data_args, resolve_data
from compile.errors import DataFileError
from compile.options import DataSpec


@pytest.mark.parametrize(("pattern", "base"), [
    ("res/**/*", "res"), ("a/b/*.json", "a/b"), ("a/b/c.txt", "a/b"), ("*.txt", "."), ("a/[xy]/z", "a"),
])
def test_glob_base(pattern: str, base: str) -> None:
    assert str(glob_base(pattern)) == base


def test_resolve_keeps_relative_layout(project: Path) -> None:
    files = resolve_data(project, (DataSpec(glob="res/**/*", destination="app/res"),))
    assert [f.destination for f in files] == ["app/res/defaults.json", "app/res/models/w.bin"]
    assert nuitka_data_args(files)[1] == f"--include-data-files={project / 'res/models/w.bin'}=app/res/models/w.bin"


def test_glob_matching_nothing_is_an_error_naming_it(project: Path) -> None:
    with pytest.raises(DataFileError, match=r"'res/\*\*/\*\.onnx' matched no file") as error:
        resolve_data(project, (DataSpec(glob="res/**/*.onnx", destination="x"),))
    assert error.value.exit_code == 4 and "make_resources" in str(error.value.hint)


@pytest.mark.parametrize("pattern", ["/etc/*", "../outside/*"])
def test_globs_must_stay_in_the_project(project: Path, pattern: str) -> None:
    with pytest.raises(DataFileError, match="relative to the project root"):
        resolve_data(project, (DataSpec(glob=pattern, destination="x"),))


def test_manifest_roundtrip(project: Path, tmp_path: Path) -> None:
    files = resolve_data(project, (DataSpec(glob="res/*.json", destination="r"),))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest(files)))
    (entry,) = load_manifest(path)
    assert entry["path"] == "r/defaults.json" and entry["bytes"] == 2 and len(entry["sha256"]) == 64
