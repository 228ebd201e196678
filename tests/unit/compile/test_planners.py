"""The Nuitka and PyInstaller command lines for every platform × tool × mode, without running them."""

from __future__ import annotations

from pathlib import Path

import pytest

from compile.backends.nuitka import nuitka_command
from compile.backends.pyinstaller import pyinstaller_command
from compile.options import PLATFORMS, BuildOptions, file_version, resolve_options
from compile.platforms.windows import version_file_text
from tests.unit.compile.conftest import PYPROJECT, sample_inputs


def options_for(root: Path, platform: str, variant: str, **cli) -> BuildOptions:
    return resolve_options(project_root=root, platform=platform, variant=variant, pyproject=PYPROJECT,
                           environ={}, cli=cli)


NUITKA_CASES = [
    # platform, variant, expected flags (subset), forbidden flags
    ("linux", "nuitka-standalone", ["--mode=standalone", "--output-filename=demo_engine"],
     ["--linux-icon", "--onefile-tempdir-spec", "--windows-console-mode", "--macos-sign-identity"]),
    ("linux", "nuitka-onefile",
     ["--mode=onefile", "--onefile-tempdir-spec={CACHE_DIR}/{COMPANY}/{PRODUCT}/{VERSION}",
      "--onefile-child-grace-time=3000", "--linux-icon=", "--include-raw-dir="],
     ["--windows-console-mode", "--onefile-as-archive"]),
    ("macos", "nuitka-standalone",
     ["--macos-create-app-bundle", "--macos-app-name=demo_engine", "--macos-app-version=1.2.3",
      "--macos-app-icon=", "--macos-sign-identity=ad-hoc"],
     ["--macos-sign-notarization", "--linux-icon", "--windows-icon-from-ico"]),
    ("macos", "nuitka-onefile", ["--mode=onefile", "--macos-sign-identity=ad-hoc"], ["--windows-console-mode"]),
    ("windows", "nuitka-standalone",
     ["--output-filename=demo_engine.exe", "--windows-console-mode=attach", "--file-version=1.2.3.0",
      "--product-version=1.2.3.0", "--file-description=Demo backend", "--copyright=(c) Demo",
      "--windows-icon-from-ico="],
     ["--macos-sign-identity", "--linux-icon"]),
    ("windows", "nuitka-onefile", ["--mode=onefile", "--output-filename=demo_engine.exe"], ["--macos-app-icon"]),
]


@pytest.mark.parametrize(("platform", "variant", "expected", "forbidden"), NUITKA_CASES)
def test_nuitka_command(project: Path, platform: str, variant: str, expected: list[str], forbidden: list[str]) -> None:
    command = nuitka_command(options_for(project, platform, variant), sample_inputs(project))
    assert command[:3] == ["/env/bin/python", "-m", "nuitka"]
    assert command[-1] == str(project / "peft_engine.py")
    for flag in expected:
        assert any(arg.startswith(flag) for arg in command), f"{flag} missing from {command}"
    for flag in forbidden:
        assert not any(arg.startswith(flag) for arg in command), f"{flag} unexpected in {command}"
    # common to every platform and mode
    assert "--company-name=Demo Co" in command and "--product-name=demo_engine" in command
    assert "--file-version=1.2.3.0" in command and "--product-version=1.2.3.0" in command
    assert "--no-deployment-flag=excluded-module-usage" in command
    assert "--nofollow-import-to=numpy,pydantic.v1,torch" in command
    assert "--include-package=typing_extensions" in command
    assert {"--include-module=_contextvars", "--include-module=csv", "--include-module=email.utils"} <= set(command)
    assert f"--include-data-files={project / 'res' / 'defaults.json'}=app/res/defaults.json" in command


@pytest.mark.parametrize("platform", PLATFORMS)
def test_nuitka_cli_overrides(project: Path, platform: str) -> None:
    options = options_for(project, platform, "nuitka-onefile", jobs=2, lto=True, onefile_as_archive=True,
                          nuitka_args=["--show-memory"])
    command = nuitka_command(options, sample_inputs(project))
    assert {"--jobs=2", "--lto=yes", "--onefile-as-archive", "--show-memory"} <= set(command)


PYINSTALLER_CASES = [
    ("linux", "pyinstaller-onefile", ["--onefile", "--add-data="], ["--icon", "--version-file", "--strip"]),
    ("linux", "pyinstaller-onedir", ["--onedir"], ["--onefile", "--strip"]),
    ("macos", "pyinstaller-onefile", ["--onefile", "--codesign-identity=-", "--icon=", "--windowed"], ["--strip"]),
    ("macos", "pyinstaller-onedir", ["--onedir", "--codesign-identity=-"], ["--version-file"]),
    ("windows", "pyinstaller-onefile", ["--onefile", "--version-file=", "--console", "--icon="], ["--strip"]),
    ("windows", "pyinstaller-onedir", ["--onedir", "--version-file="], ["--codesign-identity"]),
]


@pytest.mark.parametrize(("platform", "variant", "expected", "forbidden"), PYINSTALLER_CASES)
def test_pyinstaller_command(project: Path, platform: str, variant: str, expected: list[str], forbidden: list[str]) -> None:
    command = pyinstaller_command(options_for(project, platform, variant), sample_inputs(project))
    assert command[:3] == ["/env/bin/python", "-m", "PyInstaller"]
    for flag in expected:
        assert any(arg.startswith(flag) for arg in command), f"{flag} missing from {command}"
    for flag in forbidden:
        assert not any(arg.startswith(flag) for arg in command), f"{flag} unexpected in {command}"
    separator = ";" if platform == "windows" else ":"
    assert f"--add-data={project / 'res' / 'defaults.json'}{separator}app/res" in command
    assert "--exclude-module=pydantic.v1" in command and "--name=demo_engine" in command
    assert "--exclude-module=hf_xet" in command, "what no build ships, PyInstaller leaves out too"


def test_planners_refuse_the_other_tool(project: Path) -> None:
    with pytest.raises(ValueError):
        nuitka_command(options_for(project, "linux", "pyinstaller-onefile"), sample_inputs(project))
    with pytest.raises(ValueError):
        pyinstaller_command(options_for(project, "linux", "nuitka-onefile"), sample_inputs(project))


@pytest.mark.parametrize(("version", "expected"), [("1.2.3", "1.2.3.0"), ("0.1", "0.1.0.0"), ("2.0.0rc1", "2.0.0.0"),
                                                   ("1.2.3.4.5", "1.2.3.4")])
def test_windows_file_version(version: str, expected: str) -> None:
    assert file_version(version) == expected


def test_windows_version_resource_has_every_field(project: Path) -> None:
    text = version_file_text(options_for(project, "windows", "pyinstaller-onefile"))
    for field in ("CompanyName', 'Demo Co", "ProductName', 'demo_engine", "FileVersion', '1.2.3",
                  "LegalCopyright', '(c) Demo", "filevers=(1, 2, 3, 0)"):
        assert field in text
    compile(text, "version_info", "eval")  # PyInstaller evaluates it as a Python expression


@pytest.mark.parametrize("platform", PLATFORMS)
def test_bytecode_packages_are_included_whole_and_modules_only_demoted(project: Path, platform: str) -> None:
    options = options_for(project, platform, "nuitka-standalone", bytecode_packages=["h11"],
                          bytecode_modules=["anyio._backends._asyncio"])
    command = nuitka_command(options, sample_inputs(project))
    assert {"--include-package=h11", "--noinclude-custom-mode=h11:bytecode",
            "--noinclude-custom-mode=anyio._backends._asyncio:bytecode"} <= set(command)
    assert "--include-package=anyio._backends._asyncio" not in command


@pytest.mark.parametrize(("platform", "variant", "c_flags", "environ", "expected"), [
    ("linux", "nuitka-standalone", ["-Os"], {}, {"CFLAGS": "-Os"}),
    ("macos", "nuitka-onefile", ["-Os", "-g0"], {}, {"CFLAGS": "-Os -g0"}),
    ("linux", "nuitka-standalone", ["-Os"], {"CFLAGS": "-O3"}, {"CFLAGS": "-Os -O3"}),  # the caller's win
    ("windows", "nuitka-standalone", [], {"CFLAGS": "/O1"}, {}),
    ("linux", "pyinstaller-onefile", ["-Os"], {}, {}),
])
def test_c_flags_reach_nuitka_as_cflags(project: Path, platform: str, variant: str, c_flags: list[str],
                                        environ: dict[str, str], expected: dict[str, str]) -> None:
    from compile.plan import planned_environment

    assert planned_environment(options_for(project, platform, variant, c_flags=c_flags), environ) == expected


@pytest.mark.parametrize(("platform", "variables", "expected"), [
    ("linux", {"CFLAGS": "-Os -g0"}, "CFLAGS='-Os -g0' python -m nuitka 'a b.py'"),
    ("macos", {}, "python -m nuitka 'a b.py'"),
    ("windows", {"CFLAGS": "/O1"}, "set CFLAGS=/O1&& python -m nuitka a b.py"),
])
def test_command_line_carries_the_environment(platform: str, variables: dict[str, str], expected: str) -> None:
    from compile.plan import command_line

    assert command_line(["python", "-m", "nuitka", "a b.py"], variables, platform) == expected


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_onefile_unpacks_into_a_folder_keyed_by_its_build(project: Path, platform: str) -> None:
    """Two onefiles of one version but different content must not share an unpack folder: the spec's
    {BUILD} becomes the build's id (compile.plan.build_id), which Nuitka never sees as a placeholder."""
    options = options_for(project, platform, "nuitka-onefile")
    inputs = sample_inputs(project)
    first = nuitka_command(options, type(inputs)(**{**inputs.__dict__, "build_id": "a1b2c3d4e5f6"}))
    second = nuitka_command(options, type(inputs)(**{**inputs.__dict__, "build_id": "0f0f0f0f0f0f"}))
    spec = next(arg for arg in first if arg.startswith("--onefile-tempdir-spec="))
    assert spec.endswith("{VERSION}-a1b2c3d4e5f6") and "{BUILD}" not in spec
    assert spec != next(arg for arg in second if arg.startswith("--onefile-tempdir-spec="))


def test_the_build_id_changes_with_what_the_build_is_made_of_and_nothing_else(project: Path, tmp_path: Path) -> None:
    from compile.buildenv import BuildEnv
    from compile.plan import build_id

    (project / "backend").mkdir(exist_ok=True)
    (project / "backend" / "app.py").write_text("print('v1')\n")
    (project / "peft_engine.py").write_text("import backend\n")
    env = BuildEnv(path=tmp_path, python=tmp_path / "python", bin_dir=tmp_path, key="k1", isolated=True)
    facts = {"distributions": {"torch": {"version": "2.13.0+cpu"}}}
    options = options_for(project, "linux", "nuitka-onefile")
    data = sample_inputs(project).data_files
    first = build_id(options, env, facts, data)
    assert build_id(options, env, facts, data) == first and len(first) == 12
    (project / "backend" / "app.py").write_text("print('v2')\n")
    assert build_id(options, env, facts, data) != first
    (project / "backend" / "app.py").write_text("print('v1')\n")
    assert build_id(options, env, {"distributions": {"torch": {"version": "2.13.1+cpu"}}}, data) != first
    assert build_id(options, env, facts, data) == first
