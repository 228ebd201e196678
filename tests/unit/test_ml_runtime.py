"""The sidecar goes on the import path when ``backend`` is imported: before any code can import from it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from backend.services.ml_runtime import install_sidecar, sidecar_modules
from backend_client.manager import REPO_ROOT


def test_install_sidecar_appends_existing_folders_once(tmp_path: Path) -> None:
    present, absent = tmp_path / "sidecar", tmp_path / "absent"
    present.mkdir()
    path = ["/first"]
    assert install_sidecar([present, absent], path) == (present,)
    assert install_sidecar([present, absent], path) == ()
    assert path == ["/first", str(present)], "appended, never in front of the program's own modules"


def test_preparing_the_process_makes_the_sidecar_importable(tmp_path: Path) -> None:
    """A fresh process that runs the entry points' first step (``prepare_process``: the server's, the
    worker's and the probe's) can import what only the sidecar holds, and nothing from it was imported by
    that alone; importing ``backend`` by itself changes nothing."""
    project = tmp_path / "install"
    shutil.copytree(REPO_ROOT / "backend", project / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    package = project / "ml_sidecar" / "only_in_sidecar"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    script = ("import sys; import backend; from backend.services import ml_runtime; "
              "print(ml_runtime.installed); from backend.bootstrap import prepare_process; prepare_process(); "
              "print(ml_runtime.sidecar_modules()); import only_in_sidecar; print(only_in_sidecar.VALUE); "
              "print(ml_runtime.sidecar_modules())")
    result = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["()", "[]", "42", "['only_in_sidecar']"]


def test_sidecar_modules_lists_only_modules_from_the_given_folders(tmp_path: Path) -> None:
    assert sidecar_modules([tmp_path]) == []
    assert sidecar_modules([]) == []
