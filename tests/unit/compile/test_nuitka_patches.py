"""The patches carried against the pinned Nuitka: applied exactly once, recognised when applied, and a
Nuitka whose code moved stops the build instead of building without the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from compile.build import carried_patches
from compile.buildenv import BuildEnv, is_complete, planned_env
from compile.nuitka_patches import (
    ONEFILE_RELEASE_PAYLOAD,
    PATCHES,
    TRACKER_RELEASE_STARTUP_PAGES,
    NuitkaPatchError,
    apply_text,
    apply_to,
    nuitka_package_dir,
    revert_text,
    state,
)
from compile.options import load_pyproject, resolve_options

PATCH = ONEFILE_RELEASE_PAYLOAD
PRISTINE = f"/* head */\n#if defined(_NUITKA_CONSTANTS_FROM_LINKER)\n{PATCH.hunks[0][0]}\n/* tail */\n"
TWO_HUNKS = TRACKER_RELEASE_STARTUP_PAGES
TWO_HUNKS_PRISTINE = f"{TWO_HUNKS.hunks[0][0]}\nint main() {{\n{TWO_HUNKS.hunks[1][0]}}}\n"


def test_a_patch_applies_once_and_is_then_recognised() -> None:
    patched = apply_text(PRISTINE, PATCH)
    assert state(PRISTINE, PATCH) == "applies"
    assert state(patched, PATCH) == "applied"
    assert PATCH.marker in patched and "madvise" in patched and "VirtualUnlock" in patched
    assert apply_text(patched, PATCH) == patched
    assert revert_text(patched, PATCH) == PRISTINE


@pytest.mark.parametrize("text", [
    "/* the code the patch replaces is gone */",
    PRISTINE + PATCH.hunks[0][0],  # twice: which one is meant is unknown
    apply_text(PRISTINE, PATCH).replace("MADV_DONTNEED", "MADV_NORMAL"),
], ids=["moved", "twice", "patched-then-edited"])
def test_a_patch_that_no_longer_applies_stops_the_build(text: str) -> None:
    assert state(text, PATCH) == "stale"
    with pytest.raises(NuitkaPatchError) as raised:
        apply_text(text, PATCH, where="nuitka/build/static_src/OnefileBootstrap.c")
    assert PATCH.name in raised.value.message and "was Nuitka upgraded" in raised.value.message
    assert "compile/nuitka_patches.py" in (raised.value.hint or "")
    assert raised.value.exit_code == 5


def test_a_patch_of_two_hunks_applies_all_or_nothing() -> None:
    patched = apply_text(TWO_HUNKS_PRISTINE, TWO_HUNKS)
    assert state(patched, TWO_HUNKS) == "applied" and "releaseCleanFilePages();" in patched
    assert revert_text(patched, TWO_HUNKS) == TWO_HUNKS_PRISTINE
    half = TWO_HUNKS_PRISTINE.replace(TWO_HUNKS.hunks[1][0], "")  # the call site moved away
    with pytest.raises(NuitkaPatchError):
        apply_text(half, TWO_HUNKS)


def test_apply_to_a_package_writes_the_file_once(tmp_path: Path) -> None:
    source = tmp_path / PATCH.path
    source.parent.mkdir(parents=True)
    source.write_text(PRISTINE, encoding="utf-8")
    assert apply_to(tmp_path, (PATCH,)) == {PATCH.name: "applies"}
    assert state(source.read_text(encoding="utf-8"), PATCH) == "applied"
    assert apply_to(tmp_path, (PATCH,)) == {PATCH.name: "applied"}
    assert list(source.parent.iterdir()) == [source]  # no temporary left behind


def test_apply_to_a_package_without_the_file_fails(tmp_path: Path) -> None:
    with pytest.raises(NuitkaPatchError, match="does not exist"):
        apply_to(tmp_path, (PATCH,))


def test_a_non_isolated_build_leaves_nuitka_alone_and_says_so() -> None:
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile", environ={})
    lines: list[str] = []
    env = BuildEnv(path=Path("/nonexistent"), python=Path("/nonexistent/python"), bin_dir=Path("/nonexistent"),
                   key="current", isolated=False)
    assert carried_patches(options, env, lines.append) == {patch.name: "missing" for patch in PATCHES}
    assert any("not applied" in line and PATCH.name in line for line in lines)


def test_every_patch_applies_to_the_pinned_nuitka() -> None:
    """Against the real sources of the Nuitka the project pins (the build env's copy, patched or not).
    Bumping the pin recreates the env, and this test then fails until the patch is ported."""
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile", environ={})
    env = planned_env(options, load_pyproject(REPO_ROOT))
    if not is_complete(env):
        pytest.skip(f"no build env yet at {env.path} (the first build creates it; the build applies the patches "
                    f"and stops if one no longer applies)")
    package = nuitka_package_dir(env.python)
    assert package is not None, f"the build env {env.path} cannot import nuitka"
    for patch in PATCHES:
        text = (package / patch.path).read_text(encoding="utf-8")
        pristine = revert_text(text, patch)
        assert state(pristine, patch) == "applies", f"{patch.name} no longer applies to the pinned Nuitka"
        assert state(apply_text(pristine, patch), patch) == "applied"
