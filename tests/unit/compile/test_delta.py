"""Layers, deltas and applying them, on small folders shaped like a standalone build: a delta applied
to OLD gives NEW byte for byte, and a delta that is damaged, truncated or meant for another version is
refused with OLD untouched. (Against real builds: ``scripts/delta_sizes.py``.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from backend_client.update import BLOBS, DELTA_FILE, DeltaRefused, apply_delta, main, scan
from compile.delta import make_delta
from compile.errors import UsageError
from compile.layers import layer_of, manifest


def write_build(dist: Path, files: dict[str, bytes], variant: str = "nuitka-standalone") -> Path:
    folder = dist / variant
    root = folder / "peft_engine"
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "peft_engine").chmod(0o755)
    os.symlink("libx.so.1", root / "ml_sidecar" / "torch" / "lib" / "libx.so")
    (folder / "build.json").write_text(json.dumps({"schema_version": 1, "variant": variant,
                                                   "executable": "peft_engine/peft_engine",
                                                   "options": {"version": "1.0"}}))
    return folder


BASE = {
    "peft_engine": b"\x7fELF compiled backend v1",
    "__bytecode.bin": b"web stack v1",
    "backend/resources/defaults.json": b"{}",
    "ml_sidecar/torch/__init__.py": b"torch 2.13",
    "ml_sidecar/torch/lib/libx.so.1": b"\x7fELF torch lib" * 100,
    "ml_sidecar/torch-2.13.0.dist-info/METADATA": b"Name: torch",
    "ml_sidecar/transformers/__init__.py": b"transformers 5.24.0",
    "ml_sidecar/nvidia/cudnn/lib/libcudnn.so.9": b"cudnn" * 50,
}


@pytest.fixture
def builds(tmp_path: Path) -> tuple[Path, Path]:
    new_files = {**BASE, "peft_engine": b"\x7fELF compiled backend v2",
                 "ml_sidecar/transformers/__init__.py": b"transformers 5.24.1",
                 "ml_sidecar/transformers/new_module.py": b"new"}
    del new_files["backend/resources/defaults.json"]
    return write_build(tmp_path / "old", BASE), write_build(tmp_path / "new", new_files)


@pytest.mark.parametrize(("path", "layer"), [
    ("ml_sidecar/torch/__init__.py", "sidecar/torch"),
    ("ml_sidecar/torch-2.13.0.dist-info/METADATA", "sidecar/torch"),
    ("ml_sidecar/typing_extensions.py", "sidecar/typing-extensions"),
    ("ml_sidecar/nvidia/cudnn/lib/libcudnn.so.9", "sidecar/nvidia-cudnn"),
    ("ml_sidecar/nvidia_cudnn_cu13-9.20.0.48.dist-info/RECORD", "sidecar/nvidia-cudnn-cu13"),
    ("__bytecode.bin", "web-stack"),
    ("backend/resources/defaults.json", "resources"),
    ("_internal/backend/resources/defaults.json", "resources"),
    ("peft_engine", "runtime"),
    ("libpython3.11.so.1.0", "runtime"),
])
def test_each_file_has_its_layer(path: str, layer: str) -> None:
    assert layer_of(path) == layer


def test_a_layer_hash_changes_only_with_its_content(builds: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = (manifest(folder / "peft_engine", "nuitka-standalone", "1")["layers"] for folder in builds)
    assert old["sidecar/torch"] == new["sidecar/torch"] and old["web-stack"] == new["web-stack"]
    assert old["sidecar/transformers"]["sha256"] != new["sidecar/transformers"]["sha256"]
    assert old["runtime"]["sha256"] != new["runtime"]["sha256"] and "resources" not in new
    copy = tmp_path / "copy"
    shutil.copytree(builds[0] / "peft_engine", copy, symlinks=True)
    assert manifest(copy, "nuitka-standalone", "1")["layers"] == old  # another place, the same hashes


def test_a_delta_applied_to_old_gives_new_byte_for_byte(builds: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = builds
    summary = make_delta(old, new, tmp_path / "update")
    assert (summary.files_new, summary.files_changed, summary.files_deleted) == (1, 2, 1)
    assert set(summary.layers_changed) == {"runtime", "sidecar/transformers", "resources"}
    assert summary.blob_bytes < summary.full_bytes / 2
    installed = tmp_path / "installed"
    shutil.copytree(old / "peft_engine", installed, symlinks=True)
    counts = apply_delta(installed, tmp_path / "update")
    assert counts["written"] == 3 and counts["links"] == 1
    assert scan(installed) == scan(new / "peft_engine")
    assert os.access(installed / "peft_engine", os.X_OK) and os.readlink(installed / "ml_sidecar/torch/lib/libx.so")
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".installed")]  # nothing left aside


@pytest.mark.parametrize("damage", ["corrupted blob", "truncated blob", "missing blob", "no delta.json",
                                    "installed is another version"])
def test_a_bad_delta_is_refused_and_old_is_untouched(builds: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    old, new = builds
    update = tmp_path / "update"
    make_delta(old, new, update)
    installed = tmp_path / "installed"
    shutil.copytree(old / "peft_engine", installed, symlinks=True)
    blob = sorted((update / BLOBS).iterdir())[0]
    if damage == "corrupted blob":
        blob.write_bytes(b"X" + blob.read_bytes()[1:])
    elif damage == "truncated blob":
        blob.write_bytes(blob.read_bytes()[:-3])
    elif damage == "missing blob":
        blob.unlink()
    elif damage == "no delta.json":
        (update / DELTA_FILE).write_text('{"schema_version": 1, "new": ')
    else:
        (installed / "ml_sidecar" / "torch" / "__init__.py").write_bytes(b"torch 2.12")
    before = scan(installed)
    with pytest.raises(DeltaRefused):
        apply_delta(installed, update)
    assert scan(installed) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["installed", "new", "old", "update"]
    assert main([str(installed), str(update)]) == 1


def test_deltas_are_for_folder_builds_of_one_variant(tmp_path: Path) -> None:
    old = write_build(tmp_path / "old", BASE)
    other = write_build(tmp_path / "other", BASE, variant="pyinstaller-onedir")
    with pytest.raises(UsageError, match="from one build of a variant"):
        make_delta(old, other, tmp_path / "update")
