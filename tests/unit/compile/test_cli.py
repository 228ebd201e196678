"""Exit codes and messages of the command line (no build is started)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from compile.cli import main
from compile.nuitka_report import parse_report


def test_pyinstaller_needs_a_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pyinstaller"]) == 2
    assert "--onefile or --onedir" in capsys.readouterr().err


def test_plan_rejects_unknown_mode_and_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "twofile"]) == 2
    assert "nuitka-standalone" in capsys.readouterr().err
    assert main(["plan", "--platform", "beos", "standalone"]) == 2
    assert "linux, macos, windows" in capsys.readouterr().err


def test_bad_pyproject_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.compile]\nproduct_nam = "x"\n')
    assert main(["plan", "--project", str(tmp_path), "standalone"]) == 2
    assert "unknown key 'product_nam'" in capsys.readouterr().err


def test_verify_and_report_need_a_built_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 8
    assert "no build.json" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 8


def test_parse_nuitka_report(tmp_path: Path) -> None:
    xml = tmp_path / "r.xml"
    xml.write_text("""<?xml version='1.0' encoding='utf8'?>
<nuitka-compilation-report nuitka_version="4.3.3">
  <module name="backend.app" kind="CompiledPythonModule" usage="import" reason="Instructed by user">
    <c-compilation-resources><c-cache tech="ccache" result="cache hit"/><object-file size="1000"/></c-compilation-resources>
  </module>
  <module name="fastapi" kind="CompiledPythonPackage" usage="import" reason="follow">
    <c-compilation-resources><c-cache tech="ccache" result="cache miss"/></c-compilation-resources>
  </module>
  <module name="email" kind="UncompiledPythonPackage" usage="import" reason="stdlib"/>
  <module name="_ssl" kind="PythonExtensionModule" usage="import" reason="stdlib"/>
  <data_file name="backend/resources/defaults.json" source="x" size="10" reason="user" tags=""/>
</nuitka-compilation-report>""")
    summary = parse_report(xml).summary()
    assert summary["modules_by_kind"] == {"compiled": 2, "bytecode": 1, "extension": 1}
    assert summary["ccache"] == {"hits": 1, "misses": 1, "hit_rate": 0.5}
    assert summary["data_files"] == 1 and summary["compiled_by_package"] == {"backend": 1, "fastapi": 1}


@pytest.mark.parametrize(("dist", "shown"), [
    ("/repo/dist/nuitka-standalone", "dist/nuitka-standalone"),
    ("/elsewhere/out dir/nuitka-standalone", "'/elsewhere/out dir/nuitka-standalone'"),
])
def test_the_next_step_names_a_dist_dir_inside_or_outside_the_project(dist: str, shown: str) -> None:
    """A dist dir configured outside the project (COMPILE_DIST_DIR=/elsewhere) once crashed the summary."""
    from compile.cli import display_path

    assert shlex.quote(display_path(Path(dist), Path("/repo"))) == shown
