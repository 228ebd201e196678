"""The patches carried against the pinned Nuitka: real diff files with a reviewable header, applied in
order by our own applier exactly as ``git apply`` would, recognised once applied, all or nothing, and a
Nuitka whose code moved stops the build instead of building without the fix."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from compile import nuitka_patches
from compile.build import carried_patches
from compile.buildenv import BuildEnv, env_key, is_complete, planned_env
from compile.nuitka_patches import (
    NuitkaPatchError,
    apply_to,
    carried,
    found_states,
    nuitka_package_dir,
    patch_folder,
    series_digest,
)
from compile.options import load_pyproject, resolve_options
from compile.patching import FilePatch, Hunk, Patch, PatchError, apply_file, apply_series, parse

PATCHES = carried()
HEADER_FIELDS = ("Subject", "Measured", "Upstream", "Reproducer", "Applies-to", "License")

PRISTINE = "int a;\nint b;\nvoid f(void) {}\nint c;\nint d;\n"
DIFF = """From: test
Subject: [PATCH] demo
Measured: nothing
---
--- a/nuitka/demo.c
+++ b/nuitka/demo.c
@@ -2,3 +2,4 @@
 int b;
-void f(void) {}
+// peft-engine patch demo
+void f(void) { work(); }
 int c;
"""


def demo(tmp_path: Path) -> tuple[Patch, Path]:
    source = tmp_path / "nuitka" / "demo.c"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(PRISTINE, encoding="utf-8")
    return parse(DIFF, name="demo", source=tmp_path / "0001-demo.patch"), source


# -- the files -------------------------------------------------------------------------------------------
def test_the_series_is_numbered_and_every_patch_says_why_what_it_costs_and_where_it_stands_upstream() -> None:
    names = [path.name for path in sorted(patch_folder().glob("*.patch"))]
    assert names == [f"{number:04d}-{patch.name}.patch" for number, patch in enumerate(PATCHES, start=1)]
    assert len(PATCHES) == 7
    for patch in PATCHES:
        for field in HEADER_FIELDS:
            assert patch.field(field), f"{patch.source.name} has no {field}: header"
        assert patch.field("Reproducer") == f"python -m compile.repro {patch.name}"
        added = "\n".join(line for file in patch.files for hunk in file.hunks for line in hunk.lines
                          if line.startswith("+"))
        assert patch.marker in added, f"{patch.source.name} does not mark the code it adds"
    assert (patch_folder() / "NOTICE").is_file()


def test_the_build_env_key_changes_with_any_patch_file() -> None:
    base = env_key(["nuitka==4.3.3"], patches=series_digest())
    assert env_key(["nuitka==4.3.3"], patches=series_digest(PATCHES[:-1])) != base
    assert env_key(["nuitka==4.3.3"], patches="stock") != base


# -- the applier -----------------------------------------------------------------------------------------
def test_a_patch_applies_once_and_is_then_recognised(tmp_path: Path) -> None:
    patch, source = demo(tmp_path)
    assert found_states(tmp_path, [patch]) == {"demo": "applies"}
    assert apply_to(tmp_path, [patch]) == {"demo": "applies"}
    assert "work();" in source.read_text() and found_states(tmp_path, [patch]) == {"demo": "applied"}
    assert apply_to(tmp_path, [patch]) == {"demo": "applied"}
    assert sorted(p.name for p in source.parent.iterdir()) == ["demo.c"], "no temporary left behind"
    assert apply_series([patch], root=tmp_path, reverse=True).texts["nuitka/demo.c"] == PRISTINE


def test_a_hunk_is_found_where_the_code_moved_by_some_lines(tmp_path: Path) -> None:
    patch, source = demo(tmp_path)
    source.write_text("int z;\nint y;\n" + PRISTINE, encoding="utf-8")
    apply_to(tmp_path, [patch])
    assert source.read_text().startswith("int z;\nint y;\nint a;\nint b;\n// peft-engine patch demo")


@pytest.mark.parametrize("text", [
    "/* the code the patch changes is gone */\n",
    PRISTINE.replace("int c;", "int see;"),  # its context changed: no fuzz, ever
], ids=["moved", "context-changed"])
def test_a_patch_that_no_longer_applies_stops_the_build_and_writes_nothing(tmp_path: Path, text: str) -> None:
    patch, source = demo(tmp_path)
    source.write_text(text, encoding="utf-8")
    assert found_states(tmp_path, [patch]) == {"demo": "stale"}
    with pytest.raises(NuitkaPatchError) as raised:
        apply_to(tmp_path, [patch])
    assert "demo" in raised.value.message and "was Nuitka upgraded" in raised.value.message
    assert "compile/patches" in (raised.value.hint or "") and raised.value.exit_code == 5
    assert source.read_text() == text


def test_a_series_writes_nothing_unless_every_patch_applies(tmp_path: Path) -> None:
    first, source = demo(tmp_path)
    second = parse(DIFF.replace("patch demo", "patch other").replace("-void f(void) {}", "-void g(void) {}"),
                   name="other", source=tmp_path / "0002-other.patch")
    with pytest.raises(NuitkaPatchError, match="other"):
        apply_to(tmp_path, [first, second])
    assert source.read_text() == PRISTINE, "the first patch was written although the second does not apply"


def test_an_earlier_version_of_our_patch_is_restored_and_patched_again(tmp_path: Path, monkeypatch) -> None:
    patch, source = demo(tmp_path)
    source.write_text(PRISTINE.replace("void f(void) {}", "// peft-engine patch demo\nvoid f(void) { old(); }"))
    assert found_states(tmp_path, [patch]) == {"demo": "outdated"}
    monkeypatch.setattr(nuitka_patches, "nuitka_package_dir", lambda python: tmp_path / "nuitka")
    lines: list[str] = []
    nuitka_patches.patch_build_env(Path("python"), log=lines.append, patches=[patch],
                                   reinstall=lambda: source.write_text(PRISTINE))
    assert "work();" in source.read_text() and any("reinstalling Nuitka" in line for line in lines)


def test_a_moved_nuitka_is_not_mistaken_for_an_earlier_patch(tmp_path: Path, monkeypatch) -> None:
    patch, source = demo(tmp_path)
    source.write_text("/* Nuitka moved the code */\n")
    monkeypatch.setattr(nuitka_patches, "nuitka_package_dir", lambda python: tmp_path / "nuitka")
    with pytest.raises(NuitkaPatchError, match="was Nuitka upgraded"):
        nuitka_patches.patch_build_env(Path("python"), log=lambda line: None, patches=[patch],
                                       reinstall=lambda: pytest.fail("reinstalled for a moved Nuitka"))


def test_a_hunk_that_does_not_match_names_itself() -> None:
    file = FilePatch("x.c", (Hunk(1, (" a", "-b", "+c")),))
    with pytest.raises(PatchError, match="hunk 1"):
        apply_file("a\nz\n", file)


def test_a_non_isolated_build_leaves_nuitka_alone_and_says_so() -> None:
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile", environ={})
    lines: list[str] = []
    env = BuildEnv(path=Path("/nonexistent"), python=Path("/nonexistent/python"), bin_dir=Path("/nonexistent"),
                   key="current", isolated=False)
    assert carried_patches(options, env, lines.append) == {patch.name: "missing" for patch in PATCHES}
    assert any("not applied" in line and PATCHES[0].name in line for line in lines)
    stock = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile",
                            environ={"COMPILE_NUITKA_PATCHES": "0"})
    assert carried_patches(stock, env, lines.append) == {patch.name: "stock" for patch in PATCHES}


# -- against the pinned Nuitka's own sources -----------------------------------------------------------------
@pytest.fixture(scope="module")
def package() -> Path:
    """The pinned Nuitka of the build env (patched by the builds)."""
    options = resolve_options(project_root=REPO_ROOT, platform="linux", variant="nuitka-onefile", environ={})
    env = planned_env(options, load_pyproject(REPO_ROOT))
    if not is_complete(env):
        pytest.skip(f"no build env yet at {env.path} (the first build creates it; the build applies the patches "
                    f"and stops if one no longer applies)")
    found = nuitka_package_dir(env.python)
    assert found is not None, f"the build env {env.path} cannot import nuitka"
    return found


@pytest.fixture(scope="module")
def pristine(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the pinned Nuitka's sources with every carried patch undone (the build env's copy is patched)."""
    copy = tmp_path_factory.mktemp("nuitka") / "site"
    files = {file.path for patch in PATCHES for file in patch.files}
    for path in files:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package.parent / path, copy / path)
    if set(found_states(copy, PATCHES).values()) == {"applied"}:
        for path, text in apply_series(PATCHES, root=copy, reverse=True).texts.items():
            (copy / path).write_text(text, encoding="utf-8")
    states = found_states(copy, PATCHES)
    assert set(states.values()) == {"applies"}, f"the pinned Nuitka's sources do not take the series: {states}"
    return copy


def test_every_patch_applies_to_the_pinned_nuitka_and_patched_python_compiles(pristine: Path) -> None:
    result = apply_series(PATCHES, root=pristine)
    for path, text in result.texts.items():
        if path.endswith(".py"):
            compile(text, path, "exec")


def test_our_applier_and_git_apply_agree(pristine: Path, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed (the build never needs it)")
    copy = tmp_path / "site"
    shutil.copytree(pristine, copy)
    for patch in PATCHES:
        subprocess.run(["git", "apply", "-p1", str(patch.source)], cwd=copy, check=True, capture_output=True)
    ours = apply_series(PATCHES, root=pristine)
    for path, text in ours.texts.items():
        assert (copy / path).read_text(encoding="utf-8") == text, path


# -- 0003 bytecode-outside-image: the code generator writes the file the loader reads ----------------------------
def _codegen_helpers(technical: tuple[str, ...] = ("encodings",)) -> dict[str, object]:
    """The helpers the patch adds to LoaderCodes.py, run with stand-ins for the Nuitka names they use."""
    patch = next(p for p in PATCHES if p.name == "bytecode-outside-image")
    codegen = next(file for file in patch.files if file.path.endswith("LoaderCodes.py"))
    helpers = "\n".join(line[1:] for line in codegen.hunks[0].lines if line.startswith("+"))

    class Module:
        def __init__(self, name: str) -> None:
            self.name = name

        def getFullName(self) -> str:
            return self.name

    namespace: dict[str, object] = {
        "isStandaloneMode": lambda: True, "shallMakeModule": lambda: False,
        "getUncompiledTechnicalModules": lambda: tuple(Module(name) for name in technical),
        "inclusion_logger": None, "Module": Module,
    }
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


def test_the_generated_bytecode_file_is_what_the_loader_reads() -> None:
    import marshal

    helpers = _codegen_helpers()
    codes = [marshal.dumps(compile(f"x = {n}" + " + 1" * n, f"m{n}", "exec")) for n in range(5)]  # odd lengths too
    offsets = [helpers["_addBytecodeOutsideImage"](code) for code in codes]  # type: ignore[operator]
    blob = b"".join(helpers["_outside_bytecode_chunks"])  # type: ignore[arg-type]
    for code, offset in zip(codes, offsets, strict=True):
        stored, data = int.from_bytes(blob[offset:offset + 8], "little"), blob[offset + 8:offset + 8 + len(code)]
        assert data == code and _check_like_the_loader(data) == stored
    damaged = bytearray(blob)
    damaged[offsets[2] + 10] ^= 0xFF
    assert _check_like_the_loader(bytes(damaged[offsets[2] + 8:offsets[2] + 8 + len(codes[2])])) != \
        int.from_bytes(blob[offsets[2]:offsets[2] + 8], "little")


def test_technical_modules_stay_in_the_image() -> None:
    helpers = _codegen_helpers(technical=("encodings", "codecs"))
    module = helpers["Module"]
    assert helpers["_isBytecodeOutsideImage"](module("json")) is True  # type: ignore[operator]
    assert helpers["_isBytecodeOutsideImage"](module("codecs")) is False  # type: ignore[operator]


def test_the_file_flag_is_not_one_of_nuitkas_flags(package: Path) -> None:
    """Against the pinned Nuitka's own flag definitions: a Nuitka that starts using 256 breaks the patch."""
    patch = next(p for p in PATCHES if p.name == "bytecode-outside-image")
    found = re.search(r"#define NUITKA_BYTECODE_FILE_FLAG (\d+)", patch.source.read_text(encoding="utf-8"))
    assert found is not None
    header = (package / "build" / "include" / "nuitka" / "unfreezing.h").read_text(encoding="utf-8")
    flags = {int(value) for value in re.findall(r"#define NUITKA_\w+_FLAG (\d+)", header)}
    assert flags and all(existing & int(found.group(1)) == 0 for existing in flags)
