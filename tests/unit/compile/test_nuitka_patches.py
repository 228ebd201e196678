"""The patches carried against the pinned Nuitka: applied exactly once, recognised when applied, and a
Nuitka whose code moved stops the build instead of building without the fix."""

from __future__ import annotations

import marshal
import re
from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from compile import nuitka_bytecode_patch as bytecode_patch
from compile import nuitka_patches
from compile.build import carried_patches
from compile.buildenv import BuildEnv, is_complete, planned_env
from compile.nuitka_patches import (
    BYTECODE_OUTSIDE_IMAGE_CODEGEN,
    BYTECODE_OUTSIDE_IMAGE_LOADER,
    BYTECODE_TRIGGER_MODULES,
    ONEFILE_RELEASE_PAYLOAD,
    PATCHES,
    TRACKER_RELEASE_STARTUP_PAGES,
    NuitkaPatchError,
    apply_text,
    apply_to,
    nuitka_package_dir,
    outdated,
    outdated_patches,
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


def _pinned_nuitka_or_skip() -> Path:
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile", environ={})
    env = planned_env(options, load_pyproject(REPO_ROOT))
    if not is_complete(env):
        pytest.skip(f"no build env yet at {env.path} (the first build creates it; the build applies the patches "
                    f"and stops if one no longer applies)")
    package = nuitka_package_dir(env.python)
    assert package is not None, f"the build env {env.path} cannot import nuitka"
    earlier = outdated_patches(package)
    if earlier:
        pytest.skip(f"the build env holds an earlier version of {', '.join(earlier)}: its pristine sources come "
                    f"back with the next build, which reinstalls Nuitka, re-patches it and stops if one no longer "
                    f"applies")
    return package


def test_every_patch_applies_to_the_pinned_nuitka() -> None:
    """Against the real sources of the Nuitka the project pins (the build env's copy, patched or not).
    Bumping the pin recreates the env, and this test then fails until the patch is ported."""
    package = _pinned_nuitka_or_skip()
    for patch in PATCHES:
        text = (package / patch.path).read_text(encoding="utf-8")
        pristine = revert_text(text, patch)
        assert state(pristine, patch) == "applies", f"{patch.name} no longer applies to the pinned Nuitka"
        assert state(apply_text(pristine, patch), patch) == "applied"


def test_every_patched_python_source_of_the_pinned_nuitka_compiles() -> None:
    """A patch to Nuitka's Python (indentation is syntax there) must leave a file that still compiles."""
    package = _pinned_nuitka_or_skip()
    patched_python = [patch for patch in PATCHES if patch.path.endswith(".py")]
    assert BYTECODE_TRIGGER_MODULES in patched_python
    for patch in patched_python:
        text = (package / patch.path).read_text(encoding="utf-8")
        compile(apply_text(revert_text(text, patch), patch), patch.path, "exec")


# --- bytecode-outside-image: the code generator writes the file the loader reads ----------------------------

def _codegen_helpers(technical: tuple[str, ...] = ("encodings",)) -> dict[str, object]:
    """The patch's generator helpers, run with stand-ins for the Nuitka names they use."""
    added: list[object] = []

    class Module:
        def __init__(self, name: str) -> None:
            self.name = name

        def getFullName(self) -> str:
            return self.name

    namespace: dict[str, object] = {
        "isStandaloneMode": lambda: True, "shallMakeModule": lambda: False,
        "getUncompiledTechnicalModules": lambda: tuple(Module(name) for name in technical),
        "inclusion_logger": None, "Module": Module, "added": added,
    }
    helpers = bytecode_patch.CODEGEN_HELPERS_AFTER.replace(bytecode_patch.CODEGEN_HELPERS_BEFORE, "")
    exec(compile(helpers, "LoaderCodes.py (patched helpers)", "exec"), namespace)
    return namespace


def _check_like_the_loader(data: bytes) -> int:
    """The loader's bytecodeCheck, written from its C: FNV-1a over 64-bit little-endian words, then bytes."""
    value, prime, mask = 0xCBF29CE484222325, 0x100000001B3, 2**64 - 1
    whole = len(data) // 8 * 8
    for start in range(0, whole, 8):
        value = ((value ^ int.from_bytes(data[start:start + 8], "little")) * prime) & mask
    for byte in data[whole:]:
        value = ((value ^ byte) * prime) & mask
    return value


def _read_like_the_loader(blob: bytes, offset: int, size: int) -> bytes:
    """What readBytecodeOutsideImage does: the 8-byte check (little endian), then exactly ``size`` bytes."""
    stored, data = int.from_bytes(blob[offset:offset + 8], "little"), blob[offset + 8:offset + 8 + size]
    if len(data) != size or _check_like_the_loader(data) != stored:
        raise ValueError("damaged")
    return data


def test_the_generated_bytecode_file_is_what_the_loader_reads() -> None:
    helpers = _codegen_helpers()
    codes = [marshal.dumps(compile(f"x = {n}" + " + 1" * n, f"m{n}", "exec")) for n in range(5)]  # odd lengths too
    offsets = [helpers["_addBytecodeOutsideImage"](code) for code in codes]
    blob = b"".join(helpers["_outside_bytecode_chunks"])
    for code, offset in zip(codes, offsets, strict=True):
        assert _read_like_the_loader(blob, offset, len(code)) == code
    damaged = bytearray(blob)
    damaged[offsets[2] + 10] ^= 0xFF
    with pytest.raises(ValueError, match="damaged"):
        _read_like_the_loader(bytes(damaged), offsets[2], len(codes[2]))


def test_technical_modules_stay_in_the_image() -> None:
    helpers = _codegen_helpers(technical=("encodings", "codecs"))
    module = helpers["Module"]
    assert helpers["_isBytecodeOutsideImage"](module("json")) is True
    assert helpers["_isBytecodeOutsideImage"](module("codecs")) is False


def test_the_file_flag_is_not_one_of_nuitkas_flags() -> None:
    """Against the pinned Nuitka's own flag definitions: a Nuitka that starts using 256 breaks the patch."""
    package = _pinned_nuitka_or_skip()
    header = (package / "build" / "include" / "nuitka" / "unfreezing.h").read_text(encoding="utf-8")
    flags = {int(value) for value in re.findall(r"#define NUITKA_\w+_FLAG (\d+)", header)}
    assert flags and bytecode_patch.FILE_FLAG not in flags
    assert all(flag & bytecode_patch.FILE_FLAG == 0 for flag in flags)


def test_the_patched_generator_is_valid_python() -> None:
    package = _pinned_nuitka_or_skip()
    text = (package / BYTECODE_OUTSIDE_IMAGE_CODEGEN.path).read_text(encoding="utf-8")
    patched = apply_text(revert_text(text, BYTECODE_OUTSIDE_IMAGE_CODEGEN), BYTECODE_OUTSIDE_IMAGE_CODEGEN)
    compile(patched, BYTECODE_OUTSIDE_IMAGE_CODEGEN.path, "exec")
    assert patched.count("    _registerBytecodeOutsideImage()\n\n    return template_metapath_loader_body") == 1


def test_the_loader_half_comes_first() -> None:
    """A build must never generate entries its loader cannot read: a stale loader patch stops the build
    before the generator is patched."""
    order = [patch.name for patch in PATCHES]
    assert order.index(BYTECODE_OUTSIDE_IMAGE_LOADER.name) < order.index(BYTECODE_OUTSIDE_IMAGE_CODEGEN.name)


def test_an_earlier_version_of_our_patch_is_restored_and_patched_again(tmp_path: Path, monkeypatch) -> None:
    """The patch changed since the env was patched: the marker is there, the current text is not. The
    build reinstalls Nuitka (here: writes the pristine file back) and applies this version."""
    source = tmp_path / PATCH.path
    source.parent.mkdir(parents=True)
    earlier = apply_text(PRISTINE, PATCH).replace("MADV_DONTNEED", "MADV_FREE")
    source.write_text(earlier, encoding="utf-8")
    assert outdated(earlier, PATCH) and not outdated(PRISTINE, PATCH) and not outdated(apply_text(PRISTINE, PATCH), PATCH)
    monkeypatch.setattr(nuitka_patches, "nuitka_package_dir", lambda python: tmp_path)
    reinstalled: list[bool] = []
    lines: list[str] = []

    def reinstall() -> None:
        reinstalled.append(True)
        source.write_text(PRISTINE, encoding="utf-8")

    nuitka_patches.patch_build_env(Path("python"), log=lines.append, reinstall=reinstall, patches=(PATCH,))
    assert reinstalled == [True] and state(source.read_text(encoding="utf-8"), PATCH) == "applied"
    assert any("reinstalling Nuitka" in line for line in lines)


def test_a_moved_nuitka_is_not_mistaken_for_an_earlier_patch(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / PATCH.path
    source.parent.mkdir(parents=True)
    source.write_text("/* Nuitka moved the code */", encoding="utf-8")
    monkeypatch.setattr(nuitka_patches, "nuitka_package_dir", lambda python: tmp_path)
    with pytest.raises(NuitkaPatchError, match="was Nuitka upgraded"):
        nuitka_patches.patch_build_env(Path("python"), log=lambda line: None, patches=(PATCH,),
                                       reinstall=lambda: pytest.fail("reinstalled for a moved Nuitka"))
