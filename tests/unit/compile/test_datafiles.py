from __future__ import annotations

import json
from pathlib import Path

import pytest

from compile.datafiles import (
    DataFile,
    glob_base,
    load_manifest,
    manifest,
    module_sources,
    nuitka_data_args,
    resolve_data,
)
from compile.errors import ConfigError, DataFileError
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


MODULE_FACTS = {"distributions": {
    "anyio": {"location": "/site", "files": ["anyio/__init__.py", "anyio/to_process.py", "anyio-4.dist-info/RECORD"]},
    "six": {"location": "/other", "files": ["six.py"]},
}}


@pytest.mark.parametrize(("names", "expected"), [
    ((), []),
    (("anyio",), [DataFile(Path("/site/anyio/__init__.py"), "anyio/__init__.py")]),
    (("anyio.to_process", "six"), [DataFile(Path("/site/anyio/to_process.py"), "anyio/to_process.py"),
                                   DataFile(Path("/other/six.py"), "six.py")]),
])
def test_module_sources_ship_where_the_module_file_points(names: tuple, expected: list) -> None:
    assert module_sources(names, MODULE_FACTS) == expected


@pytest.mark.parametrize("name", ["anyio.missing", "json", "anyio-4"])
def test_a_module_without_an_installed_source_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"module-sources: '{name}' has no source file"):
        module_sources((name,), MODULE_FACTS)
