"""The CUDA flavour's build, when there is one (``python -m tests cuda`` builds it): the libraries the
build stripped still load, and torch loads its CUDA library, on this machine without a GPU.

(The behaviour suite and ``compile verify`` run against it too; these are what only the CUDA build has.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from compile.artifacts import locate

pytestmark = [pytest.mark.integration, pytest.mark.build]

CUDA = REPO_ROOT / "dist" / "nuitka-standalone-cuda"


@pytest.fixture(scope="module")
def build() -> dict:
    if not (CUDA / "build.json").is_file():
        pytest.skip("no CUDA build: python -m compile standalone --torch cuda")
    return json.loads((CUDA / "build.json").read_text(encoding="utf-8"))


def self_check(check: str) -> dict:
    artifact = locate(CUDA)
    spec = artifact.launch_spec(None)
    result = subprocess.run([*spec.command, "--self-check", check], capture_output=True, text=True, timeout=900,
                            env=spec.environment())
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, report
    return report


def test_every_stripped_cuda_library_still_loads(build: dict) -> None:
    """Decided from measurement (docs/developer-guide/cuda.md): NVIDIA's own libraries ship without a
    symbol table; torch's CUDA libraries, NCCL and triton carried 512 MiB of them, stripped. If a
    stripped one no longer loads, this fails naming it."""
    sidecar = CUDA / "peft_engine" / "ml_sidecar"
    stripped = [sidecar / "torch" / "lib" / "libtorch_cuda.so", sidecar / "nvidia" / "nccl" / "lib" / "libnccl.so.2"]
    assert build["sidecar"]["stripped_files"] and all(path.is_file() for path in stripped)
    report = self_check("libraries")
    troubles = {Path(item["path"]).name for item in report["failed"] + report["outside"]}
    assert not troubles & {path.name for path in stripped}, report
    assert report["loaded"] + len(report["loaded_as_dependency"]) + len(report["needs_driver"]) == report["libraries"]


def test_import_torch_loads_its_cuda_library_and_falls_back_to_the_cpu_cleanly(build: dict) -> None:
    report = self_check("torch")
    assert report["torch_cuda"] and any(name.startswith("libtorch_cuda") for name in report["cuda_libraries_loaded"])
    if not report["cuda_available"]:
        assert report["device"] == "cpu" and "no CUDA device is available" in report["device_reason"]
        assert report["warnings"] == []
