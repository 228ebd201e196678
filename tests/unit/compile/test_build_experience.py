"""Builds that say what they do, configuration that cannot rot: progress lines, did-you-mean, the options
dump, stale [tool.compile] entries, and a plan that creates nothing."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from compile.cli import main
from compile.config_check import installed_modules, stale_entries
from compile.errors import ConfigError
from compile.nuitka_report import ModuleEntry, NuitkaReport
from compile.options import resolve_options
from compile.progress import NORMAL, QUIET, VERBOSE, NuitkaPhases, Progress, PyInstallerPhases
from compile.sidecar import MaterializeReport, plan_sidecar


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress_at(verbosity: int, github_actions: bool = False) -> tuple[Progress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    return Progress(verbosity, stream, clock, github_actions), stream, clock


def test_each_step_says_when_it_started_and_how_long_it_took() -> None:
    progress, stream, clock = progress_at(NORMAL)
    with progress.step("copy the sidecar"):
        clock.now = 12.5
    assert stream.getvalue().splitlines() == ["[    0.0s] ▶ copy the sidecar", "[   12.5s] ✓ copy the sidecar (12.5s)"]


def test_github_actions_folds_each_step_and_quiet_prints_only_failures() -> None:
    progress, stream, _ = progress_at(NORMAL, github_actions=True)
    with progress.step("nuitka"):
        progress.raw("Nuitka: compiling")
    assert stream.getvalue().splitlines()[0] == "::group::nuitka" and "::endgroup::" in stream.getvalue()
    assert "Nuitka: compiling" not in stream.getvalue(), "the tool's own output needs -v"
    quiet, quiet_stream, _ = progress_at(QUIET)
    with quiet.step("fine"):
        pass
    with pytest.raises(RuntimeError), quiet.step("broken"):
        raise RuntimeError
    assert quiet_stream.getvalue().splitlines() == ["[    0.0s] ✗ broken failed after 0.0s"]
    verbose, verbose_stream, _ = progress_at(VERBOSE)
    verbose.raw("Nuitka: compiling")
    assert "Nuitka: compiling" in verbose_stream.getvalue()


def test_heartbeat_reports_c_files_compiled_out_of_the_total(tmp_path: Path) -> None:
    progress, stream, clock = progress_at(NORMAL)
    phases = NuitkaPhases(progress, tmp_path)
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.c").write_text("")
    (tmp_path / "old.o").write_text("")
    os.utime(tmp_path / "old.o", (time.time() - 3600, time.time() - 3600))  # from an earlier build
    phases.feed("Nuitka: Starting Python compilation with:")
    clock.now = 40
    phases.feed("Nuitka: Running C compilation via Scons.")
    (tmp_path / "a.o").write_text("")
    clock.now = 70
    assert phases.status() == "C compile: 1 of 4 files (25%), 30s"
    text = stream.getvalue()
    assert "▶ Python phase" in text and "✓ Python phase (following imports, optimizing) (40.0s)" in text

    beats = []
    with progress.heartbeat(lambda: beats.append(1) or "working", every=0.01):
        time.sleep(0.05)
    assert beats and "… working" in stream.getvalue()


@pytest.mark.parametrize(("table", "hint"), [
    ({"produkt-name": "x"}, "did you mean 'product-name'?"),
    ({"bytecode_module": ["x"]}, "did you mean 'bytecode-modules'?"),
    ({"linux": {"c-flag": ["-Os"]}}, "did you mean 'c-flags'?"),
])
def test_a_misspelled_key_suggests_the_right_one(table: dict, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_options(project_root=Path("/p"), platform="linux", variant="nuitka-standalone",
                        pyproject={"tool": {"compile": table}}, environ={})
    assert hint in str(caught.value)


def test_a_misspelled_variable_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_options(project_root=Path("/p"), platform="linux", variant="nuitka-standalone", pyproject={},
                        environ={"COMPILE_JOB": "2"})
    assert "did you mean 'COMPILE_JOBS'?" in str(caught.value)


def test_the_options_dump_shows_what_differs_unless_verbose() -> None:
    options = resolve_options(project_root=Path("/p"), platform="linux", variant="nuitka-standalone",
                              pyproject={"tool": {"compile": {"jobs": 3}}}, environ={})
    short, everything = options.describe(), options.describe(everything=True)
    assert "jobs" in short and "lto" not in short and "options at their defaults not shown" in short
    assert "lto" in everything and len(everything.splitlines()) > len(short.splitlines()) + 20


FACTS = {"python": [3, 11, 7], "backend_imports": ["fastapi"], "distributions": {
    "fastapi": {"requires": [], "imports": ["fastapi"], "files": ["fastapi/__init__.py", "fastapi/routing.py"]},
    "torch": {"requires": ["sympy"], "imports": ["torch"], "files": ["torch/__init__.py", "torch/_C.cpython-311.so"]},
    "sympy": {"requires": [], "imports": ["sympy"], "files": ["sympy/__init__.py"]},
    "typer": {"requires": [], "imports": ["typer"], "files": ["typer/__init__.py"]},
}}


def stale(**table: object) -> list[str]:
    options = resolve_options(project_root=Path("/p"), platform="linux", variant="nuitka-standalone",
                              pyproject={"tool": {"compile": {"sidecar-roots": ["torch"], **table}}}, environ={})
    plan = plan_sidecar(FACTS, options.sidecar_roots, options.sidecar_exclude)
    report = NuitkaReport(modules=[ModuleEntry("fastapi", "compiled", "", None, None, None),
                                   ModuleEntry("fastapi.routing", "bytecode", "", None, None, None)])
    files = MaterializeReport(trimmed_by_pattern={"tests": 3})
    return [str(entry) for entry in stale_entries(options, FACTS, plan, report, files)]


def test_entries_that_match_something_pass() -> None:
    assert stale(**{"bytecode-modules": ["fastapi.routing"], "exclude-modules": ["fastapi.routing", "json"],
                    "sidecar-trim": ["tests"], "sidecar-keep-sources": ["torch"]}) == []
    assert "torch._C" in installed_modules(FACTS) and "fastapi" in installed_modules(FACTS)


@pytest.mark.parametrize(("table", "says"), [
    ({"bytecode-modules": ["fastapi.routing_v2"]}, "bytecode-modules: 'fastapi.routing_v2' is not in the build"),
    ({"bytecode-modules": ["fastapi"]}, "bytecode-modules: 'fastapi' has modules built as compiled: fastapi"),
    ({"bytecode-packages": ["fastapi"]}, "bytecode-packages: 'fastapi' has modules built as compiled: fastapi"),
    ({"bytecode-packages": ["fastapi.routing_v2"]}, "bytecode-packages: 'fastapi.routing_v2' is not in the build"),
    ({"exclude-modules": ["uvicorn.protocols.websocketz"]}, "is not a module of any installed distribution"),
    ({"include-modules": ["_jsonx"]}, "include-modules: '_jsonx' is not in the build"),
    ({"sidecar-exclude": ["typer"]}, "sidecar-exclude: 'typer' is not required by any sidecar root"),
    ({"sidecar-exclude": ["hf-xet"]}, "sidecar-exclude: 'hf-xet' is not an installed distribution"),
    ({"sidecar-keep-sources": ["transformers"]}, "sidecar-keep-sources: 'transformers' is not a sidecar distribution"),
    ({"sidecar-trim": ["tests", "*.pyx"]}, "sidecar-trim: '*.pyx' matched no file of the sidecar"),
])
def test_an_entry_that_matches_nothing_is_named(table: dict, says: str) -> None:
    assert any(says in line for line in stale(**table)), stale(**table)


def test_plan_creates_no_build_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from backend_client.manager import REPO_ROOT

    monkeypatch.setenv("COMPILE_BUILD_ENV_DIR", str(tmp_path / "envs"))
    assert main(["plan", "--project", str(REPO_ROOT), "pyinstaller-onedir"]) == 0
    out = capsys.readouterr().out
    assert "is not created yet (the first build creates it)" in out and "PyInstaller" in out
    assert not (tmp_path / "envs").exists()


def test_pyinstaller_heartbeat_follows_the_files_it_writes(tmp_path: Path) -> None:
    progress, _, clock = progress_at(NORMAL)
    work, dist = tmp_path / "work" / "peft_engine", tmp_path / "dist"
    work.mkdir(parents=True)
    stale = work / "Analysis-00.toc"  # an earlier build's: the analysis of this one is not done
    stale.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    phases = PyInstallerPhases(progress, tmp_path / "work", dist)
    clock.now = 42
    assert phases.status() == "analysis (following imports): 42s since the start"
    stale.write_text("")
    (work / "PYZ-00.toc").write_text("")
    (work / "peft_engine.pkg").write_bytes(b"x" * 3 * 2**20)
    assert phases.status() == "compress the package: 3 MiB written"
    dist.mkdir()
    (dist / "peft_engine").write_bytes(b"x" * 2**20)
    assert phases.status() == "write the executable: 1 MiB"
    (dist / "peft_engine").unlink()
    (dist / "peft_engine" / "_internal").mkdir(parents=True)
    (dist / "peft_engine" / "_internal" / "lib.so").write_bytes(b"x" * 2**21)
    assert phases.status() == "collect: 1 files, 2 MiB"
