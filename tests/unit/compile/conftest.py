from __future__ import annotations

from pathlib import Path

import pytest

from compile.backends import BuildInputs
from compile.datafiles import DataFile
from compile.sidecar import SidecarPlan

PYPROJECT = {
    "project": {"name": "demo", "version": "1.2.3", "dependencies": ["fastapi==1", "torch==2"]},
    "tool": {"compile": {
        "product-name": "demo_engine",
        "company-name": "Demo Co",
        "description": "Demo backend",
        "copyright": "(c) Demo",
        "exclude-modules": ["pydantic.v1"],
        "data": [{"glob": "res/**/*", "destination": "app/res"}],
        "linux": {"icon": "icons/app.png"},
        "macos": {"icon": "icons/app.icns", "macos-app-bundle": True},
        "windows": {"icon": "icons/app.ico", "console-mode": "attach"},
    }},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "res" / "models").mkdir(parents=True)
    (tmp_path / "res" / "defaults.json").write_text("{}")
    (tmp_path / "res" / "models" / "w.bin").write_bytes(b"\0" * 10)
    (tmp_path / "app.py").write_text("print('hi')\n")
    return tmp_path


def sample_inputs(root: Path) -> BuildInputs:
    plan = SidecarPlan(
        distributions=("numpy", "torch"), shared=("typing-extensions",), compiled_side=("fastapi",),
        nofollow_imports=("numpy", "torch"), complete_packages=("typing_extensions",),
        reasons={"numpy": "required by torch", "torch": "root"},
        dropped=("hf-xet",), dropped_imports=("hf_xet",),
    )
    return BuildInputs(
        python="/env/bin/python",
        data_files=(DataFile(root / "res" / "defaults.json", "app/res/defaults.json"),),
        sidecar=plan, sidecar_dir=root / "build" / "ml_sidecar",
        stdlib_modules=("_contextvars", "csv", "email.utils"),
    )
