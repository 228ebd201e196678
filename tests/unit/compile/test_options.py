"""Option resolution: defaults < [tool.compile] < [tool.compile.<platform>] < COMPILE_* < CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from compile.errors import ConfigError, UsageError
from compile.options import DataSpec, check_platform, check_variant, resolve_options
from tests.unit.compile.conftest import PYPROJECT


def resolve(tmp_path: Path, platform: str = "linux", environ: dict | None = None, cli: dict | None = None,
            pyproject: dict | None = None):
    return resolve_options(project_root=tmp_path, platform=platform, variant="nuitka-standalone",
                           pyproject=pyproject or PYPROJECT, environ=environ or {}, cli=cli)


def test_defaults_then_table_then_platform_table(tmp_path: Path) -> None:
    options = resolve(tmp_path, platform="windows")
    assert options.version == "1.2.3"  # from [project]
    assert options.product_name == "demo_engine"  # [tool.compile]
    assert options.icon == "icons/app.ico" and options.console_mode == "attach"  # [tool.compile.windows]
    assert options.jobs == 0 and options.onefile_child_grace_ms == 3000  # defaults
    assert options.data == (DataSpec(glob="res/**/*", destination="app/res"),)
    assert resolve(tmp_path, platform="macos").macos_app_bundle is True
    assert resolve(tmp_path, platform="linux").macos_app_bundle is False


def test_environment_beats_tables_and_cli_beats_environment(tmp_path: Path) -> None:
    environ = {"COMPILE_PRODUCT_NAME": "from_env", "COMPILE_JOBS": "3", "COMPILE_LTO": "yes",
               "COMPILE_EXCLUDE_MODULES": "a, b", "PATH": "/usr/bin"}
    options = resolve(tmp_path, environ=environ)
    assert (options.product_name, options.jobs, options.lto, options.exclude_modules) == ("from_env", 3, True, ("a", "b"))
    options = resolve(tmp_path, environ=environ, cli={"jobs": 1, "lto": False, "product_name": None})
    assert (options.product_name, options.jobs, options.lto) == ("from_env", 1, False)


def test_options_are_frozen(tmp_path: Path) -> None:
    options = resolve(tmp_path)
    with pytest.raises(AttributeError):
        options.jobs = 4  # type: ignore[misc]


@pytest.mark.parametrize(("pyproject", "message"), [
    ({"tool": {"compile": {"produkt-name": "x"}}}, "[tool.compile]: unknown key 'produkt-name'"),
    ({"tool": {"compile": {"linux": {"jobz": 1}}}}, "[tool.compile.linux]: unknown key 'jobz'"),
    ({"tool": {"compile": {"jobs": "many"}}}, "invalid value for 'jobs'"),
    ({"tool": {"compile": {"jobs": -1}}}, "must not be negative"),
    ({"tool": {"compile": {"lto": "maybe"}}}, "expected a boolean"),
    ({"tool": {"compile": {"console-mode": "loud"}}}, "expected one of force, disable, attach, hide"),
    ({"tool": {"compile": {"exclude-modules": "x"}}}, None),  # a string is accepted as a comma list
    ({"tool": {"compile": {"data": [{"glob": "x"}]}}}, "needs exactly 'glob' and 'destination'"),
    ({"tool": {"compile": {"platform": "linux"}}}, "unknown key 'platform'"),
])
def test_invalid_configuration_names_the_key(tmp_path: Path, pyproject: dict, message: str | None) -> None:
    if message is None:
        assert resolve(tmp_path, pyproject=pyproject).exclude_modules == ("x",)
        return
    with pytest.raises(ConfigError) as error:
        resolve(tmp_path, pyproject=pyproject)
    assert message in str(error.value)
    assert error.value.exit_code == 2


def test_unknown_environment_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COMPILE_JOBSS") as error:
        resolve(tmp_path, environ={"COMPILE_JOBSS": "2"})
    assert "COMPILE_JOBS" in str(error.value.hint)


def test_unknown_platform_and_mode_list_valid_ones() -> None:
    with pytest.raises(UsageError) as error:
        check_platform("beos")
    assert "linux, macos, windows" in str(error.value)
    with pytest.raises(UsageError) as error:
        check_variant("nuitka-twofile")
    assert "nuitka-standalone" in str(error.value) and "pyinstaller-onedir" in str(error.value)


def test_describe_lists_every_option(tmp_path: Path) -> None:
    text = resolve(tmp_path).describe()
    assert "product-name           demo_engine" in text
    assert "data                   res/**/* -> app/res" in text
