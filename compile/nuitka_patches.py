"""Source patches carried against the pinned Nuitka, applied to the isolated build env's copy of Nuitka.

Each patch is an exact text replacement in one of Nuitka's sources (C, or the Python that generates
C). Applying is idempotent (a patched file is recognised and left alone), and a file in which the
original text is not found exactly once fails the build with :class:`NuitkaPatchError`: a Nuitka
upgrade that moved the code must be looked at, never silently built without the fix. A file that
holds an earlier version of one of our own patches (the patch changed since) is restored by
reinstalling the pinned Nuitka, then patched again.

Only the isolated build env is patched. With ``isolated = false`` the user's own Nuitka is not
touched, and the build says that the patch is missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from compile import nuitka_bytecode_patch as bytecode
from compile.errors import BuildEnvError

PatchState = Literal["applied", "applies", "stale"]
FoundState = Literal["applied", "applies", "stale", "outdated"]  # outdated: an earlier version of ours


class NuitkaPatchError(BuildEnvError):
    """A carried patch no longer matches the installed Nuitka's sources."""


@dataclass(frozen=True)
class SourcePatch:
    name: str
    path: str  # relative to the ``nuitka`` package folder
    hunks: tuple[tuple[str, str], ...]  # (before, after): each before occurs exactly once in the pristine file
    marker: str  # in the first hunk's after; a pristine file never contains it
    why: str
    upstream: str  # what to report to Nuitka


_ONEFILE_BEFORE = """static void closePayloadData(void) {}

#elif _NUITKA_ONEFILE_HAS_PAYLOAD_BOOL == 0"""

_ONEFILE_AFTER = """// peft-engine patch onefile-release-payload: the bootstrap parent stays alive while the
// program runs, and the payload it unpacked is part of its executable image. Its pages are never written, so
// dropping them from the process costs nothing, and a later read would fault them in from the file.
#if defined(_WIN32)
static void closePayloadData(void) {
    // Pages that are not locked leave the working set (the call then reports ERROR_NOT_LOCKED).
    VirtualUnlock((LPVOID)payload_data, (SIZE_T)payload_size);
}
#else
#include <sys/mman.h>
static void closePayloadData(void) {
    uintptr_t const page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t const start = ((uintptr_t)payload_data + page - 1) & ~(page - 1);
    uintptr_t const end = ((uintptr_t)payload_data + (uintptr_t)payload_size) & ~(page - 1);

    if (end > start) {
        madvise((void *)start, (size_t)(end - start), MADV_DONTNEED);
    }
}
#endif

#elif _NUITKA_ONEFILE_HAS_PAYLOAD_BOOL == 0"""

ONEFILE_RELEASE_PAYLOAD = SourcePatch(
    name="onefile-release-payload",
    path="build/static_src/OnefileBootstrap.c",
    hunks=((_ONEFILE_BEFORE, _ONEFILE_AFTER),),
    marker="peft-engine patch onefile-release-payload",
    why="the onefile bootstrap parent kept every payload page it had unpacked resident for the whole run "
        "(about 90 MiB of a 194 MiB onefile, 2.8x the PyInstaller onefile's process tree)",
    upstream="OnefileBootstrap.c closePayloadData() is empty for an embedded payload, so the parent that "
             "waits for the child keeps the unpacked payload in its resident set; madvise(MADV_DONTNEED) "
             "(POSIX) or VirtualUnlock (Windows) on the payload range after unpacking releases it",
)

_TRACKER_DEFINITION_BEFORE = """// This is a multiprocessing resource or semaphore tracker if not -1
static int multiprocessing_resource_tracker_arg = -1;"""

_TRACKER_DEFINITION_AFTER = """// peft-engine patch tracker-release-startup-pages: the resource tracker is this whole
// program re-run, and it lives as long as the program that started it. Its startup faulted in pages of the
// binary (the constants blob walk) that it never reads again. Every private, read-only file mapping
// that holds no page of its own ("Anonymous: 0 kB": nothing relocated or written) is released; a
// later read faults a page back in from the page cache.
#if defined(__linux__)
#include <sys/mman.h>
static void releaseCleanFilePages(void) {
    FILE *smaps = fopen("/proc/self/smaps", "r");
    if (smaps == NULL) {
        return;
    }
    char line[4352];
    unsigned long start = 0, end = 0;
    bool candidate = false;
    while (fgets(line, sizeof(line), smaps) != NULL) {
        unsigned long first, last;
        char perms[5];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &first, &last, perms, &path_at) == 3) {
            start = first;
            end = last;
            candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && path_at > 0 &&
                        line[path_at] == '/' && strncmp(line + path_at, "/dev/", 5) != 0;
        } else if (candidate && strncmp(line, "Anonymous:", 10) == 0) {
            if (strtoul(line + 10, NULL, 10) == 0) {
                madvise((void *)start, end - start, MADV_DONTNEED);
            }
            candidate = false;
        }
    }
    fclose(smaps);
}
#endif

// This is a multiprocessing resource or semaphore tracker if not -1
static int multiprocessing_resource_tracker_arg = -1;"""

_TRACKER_EXECUTE = ("        PyObject *resource_tracker_module = "
                    "EXECUTE_MAIN_MODULE(tstate, tracker_module_name, true);\n")
_TRACKER_CALL_BEFORE = _TRACKER_EXECUTE

_TRACKER_CALL_AFTER = _TRACKER_EXECUTE + """#if defined(__linux__)
        releaseCleanFilePages();
#endif
"""

TRACKER_RELEASE_STARTUP_PAGES = SourcePatch(
    name="tracker-release-startup-pages",
    path="build/static_src/MainProgram.c",
    hunks=((_TRACKER_DEFINITION_BEFORE, _TRACKER_DEFINITION_AFTER), (_TRACKER_CALL_BEFORE, _TRACKER_CALL_AFTER)),
    marker="peft-engine patch tracker-release-startup-pages",
    why="multiprocessing's resource tracker, started with the first training job and alive until the "
        "server exits, is the whole binary re-run and kept 16 MiB of the binary's startup pages resident "
        "(23 MiB in all, against 7.5 MiB for a source run's tracker)",
    upstream="MainProgram.c runs the multiprocessing resource tracker from the full program image, so the "
             "pages its startup faulted in (the constants blob walk) stay resident in a process that "
             "idles for the program's whole life; releasing clean file pages before calling its main() "
             "returns them",
)

_BYTECODE_WHY = ("the bytecode of every module Nuitka does not compile (most of the standard library) sat in the "
                 "constants blob inside the executable, and importing it left the blob's pages resident: 12.0 of "
                 "13.3 MiB in an idle server, in every process, on every OS")
_BYTECODE_UPSTREAM = ("bytecode modules are unmarshalled straight from the constants blob in the program image, so "
                      "every import faults in blob pages that stay resident (fault-around makes that nearly the "
                      "whole blob); keeping non-technical bytecode in a file beside the executable and reading "
                      "each module's bytes when imported, as CPython reads a .pyc, keeps them out of the "
                      "resident set")

# The loader half first: a build never generates entries that its loader cannot read.
BYTECODE_OUTSIDE_IMAGE_LOADER = SourcePatch(
    name="bytecode-outside-image-loader",
    path="build/static_src/MetaPathBasedLoader.c",
    hunks=((bytecode.LOADER_READER_BEFORE, bytecode.LOADER_READER_AFTER),
           (bytecode.LOADER_READ_BEFORE, bytecode.LOADER_READ_AFTER)),
    marker=bytecode.MARKER,
    why=_BYTECODE_WHY,
    upstream=_BYTECODE_UPSTREAM,
)

BYTECODE_OUTSIDE_IMAGE_CODEGEN = SourcePatch(
    name="bytecode-outside-image-codegen",
    path="code_generation/LoaderCodes.py",
    hunks=((bytecode.CODEGEN_HELPERS_BEFORE, bytecode.CODEGEN_HELPERS_AFTER),
           (bytecode.CODEGEN_ENTRY_BEFORE, bytecode.CODEGEN_ENTRY_AFTER),
           (bytecode.CODEGEN_REGISTER_BEFORE, bytecode.CODEGEN_REGISTER_AFTER)),
    marker=bytecode.MARKER,
    why=_BYTECODE_WHY,
    upstream=_BYTECODE_UPSTREAM,
)

_TRIGGER_BEFORE = """        if trigger_module.getCompilationMode() == "bytecode":
            trigger_module.setSourceCode(code)"""

_TRIGGER_AFTER = (
    "        # peft-engine patch bytecode-trigger-modules: a trigger module in a namespace demoted to bytecode\n"
    "        # comes from the bytecode cache as an uncompiled module, which already holds its code and has no mode.\n"
    "        if trigger_module.isCompiledPythonModule() and "
    "trigger_module.getCompilationMode() == \"bytecode\":\n"
    "            trigger_module.setSourceCode(code)"
)

BYTECODE_TRIGGER_MODULES = SourcePatch(
    name="bytecode-trigger-modules",
    path="plugins/Plugins.py",
    hunks=((_TRIGGER_BEFORE, _TRIGGER_AFTER),),
    marker="peft-engine patch bytecode-trigger-modules",
    why="demoting a whole package to bytecode (--noinclude-custom-mode=anyio:bytecode) crashed the build with "
        "\"'UncompiledPythonModule' object has no attribute 'getCompilationMode'\" when a Nuitka plugin adds "
        "load-time code to one of its modules (anyio.to_process) and the bytecode cache already knew it",
    upstream="Plugins._createTriggerLoadedModule() calls getCompilationMode() on the module buildModule() "
             "returns, but for a demoted module found in the bytecode cache that is an UncompiledPythonModule, "
             "which has no such method; it already holds the trigger's bytecode, so only a compiled module "
             "in bytecode mode needs setSourceCode()",
)

_RELEASE_CALL_BEFORE = "        return loadModuleFromCodeObject(tstate, module, module_name, code_object, entry);\n"
_RELEASE_CALL_AFTER = """\
        // peft-engine patch loader-releases-module-code: the module body's code object (and, through
        // its constants, every class body's) is needed only while it runs. Unmarshalling made it ours;
        // the import never takes that reference over, so unreleased it stayed alive for the program's life.
        PyObject *loaded = loadModuleFromCodeObject(tstate, module, module_name, code_object, entry);
        Py_DECREF(code_object);
        return loaded;
"""
_RELEASE_PATH_BEFORE = """    code_object->co_filename = module_path;
    Py_INCREF(module_path);
"""
_RELEASE_PATH_AFTER = """    PyObject *old_filename = code_object->co_filename;
    code_object->co_filename = module_path;
    Py_INCREF(module_path);
    Py_XDECREF(old_filename);
"""

LOADER_RELEASES_MODULE_CODE = SourcePatch(
    name="loader-releases-module-code",
    path="build/static_src/MetaPathBasedLoader.c",
    hunks=((_RELEASE_CALL_BEFORE, _RELEASE_CALL_AFTER), (_RELEASE_PATH_BEFORE, _RELEASE_PATH_AFTER)),
    marker="peft-engine patch loader-releases-module-code",
    why="every module Nuitka loads from bytecode kept its module body's code object (with each class body's) "
        "for the program's life: about 3 MB of an idle server's Python heap that a source run frees, in every "
        "process, on every OS (tracemalloc: 19.4 MB allocated under the import of bytecode modules against "
        "16.4 MB from source)",
    upstream="MetaPathBasedLoader.c: the code object that PyMarshal_ReadObjectFromString returns for a bytecode "
             "module is passed to PyImport_ExecCodeModuleObject, which does not steal it, and is never released "
             "(loadModuleFromCodeObject's caller should Py_DECREF it); patchCodeObjectPaths also drops the "
             "reference to each replaced co_filename without releasing it",
)

PATCHES: tuple[SourcePatch, ...] = (ONEFILE_RELEASE_PAYLOAD, TRACKER_RELEASE_STARTUP_PAGES,
                                    BYTECODE_OUTSIDE_IMAGE_LOADER, BYTECODE_OUTSIDE_IMAGE_CODEGEN,
                                    BYTECODE_TRIGGER_MODULES, LOADER_RELEASES_MODULE_CODE)


def state(text: str, patch: SourcePatch) -> PatchState:
    if patch.marker in text:
        return "applied" if all(text.count(after) == 1 for _, after in patch.hunks) else "stale"
    return "applies" if all(text.count(before) == 1 for before, _ in patch.hunks) else "stale"


def apply_text(text: str, patch: SourcePatch, *, where: str = "") -> str:
    found = state(text, patch)
    if found == "applied":
        return text
    if found == "stale":
        raise NuitkaPatchError(
            f"the carried Nuitka patch {patch.name!r} no longer applies to {where or patch.path}: the code it "
            f"replaces was not found exactly once (was Nuitka upgraded?)",
            hint=f"port the patch in compile/nuitka_patches.py to the new Nuitka, or drop it if Nuitka fixed "
                 f"it upstream ({patch.upstream})")
    for before, after in patch.hunks:
        text = text.replace(before, after)
    return text


def revert_text(text: str, patch: SourcePatch) -> str:
    """The pristine text of a patched file (for tests that check the patch against the pinned Nuitka)."""
    if state(text, patch) != "applied":
        return text
    for before, after in reversed(patch.hunks):
        text = text.replace(after, before)
    return text


_LOCATE = "import nuitka, os; print(os.path.dirname(os.path.abspath(nuitka.__file__)))"


def nuitka_package_dir(python: Path) -> Path | None:
    """The ``nuitka`` package folder of the interpreter ``python`` (None: not installed there)."""
    try:
        out = subprocess.run([str(python), "-c", _LOCATE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    folder = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None


def apply_to(package_dir: Path, patches: tuple[SourcePatch, ...] = PATCHES) -> dict[str, PatchState]:
    """Apply each patch to the Nuitka package at ``package_dir``; returns what each one was before."""
    before: dict[str, PatchState] = {}
    for patch in patches:
        source = package_dir / patch.path
        if not source.is_file():
            raise NuitkaPatchError(f"the carried Nuitka patch {patch.name!r} targets {source}, which does not exist",
                                   hint="port or drop the patch in compile/nuitka_patches.py")
        text = source.read_text(encoding="utf-8")
        before[patch.name] = state(text, patch)
        patched = apply_text(text, patch, where=str(source))
        if patched != text:
            temporary = source.with_name(source.name + ".peft-engine-patch")
            temporary.write_text(patched, encoding="utf-8", newline="")
            temporary.replace(source)
    return before


def found_state(package_dir: Path, patch: SourcePatch) -> FoundState:
    """What ``patch`` is in the Nuitka package at ``package_dir``, changing nothing."""
    source = package_dir / patch.path
    if not source.is_file():
        return "stale"
    text = source.read_text(encoding="utf-8")
    return "outdated" if outdated(text, patch) else state(text, patch)


def patch_states(python: Path, patches: tuple[SourcePatch, ...] = PATCHES) -> dict[str, FoundState]:
    """What each patch is in the Nuitka of ``python``, changing nothing ({}: no Nuitka there)."""
    folder = nuitka_package_dir(python)
    if folder is None:
        return {}
    return {patch.name: found_state(folder, patch) for patch in patches}


def outdated(text: str, patch: SourcePatch) -> bool:
    """An earlier version of this patch is applied: its marker is there, its current text is not. Only
    reinstalling Nuitka gives back the pristine file to apply this version to."""
    return patch.marker in text and state(text, patch) == "stale"


def outdated_patches(package_dir: Path, patches: tuple[SourcePatch, ...] = PATCHES) -> list[str]:
    return [patch.name for patch in patches if found_state(package_dir, patch) == "outdated"]


def patch_build_env(python: Path, log: Callable[[str], None] = print, reinstall: Callable[[], None] | None = None,
                    patches: tuple[SourcePatch, ...] = PATCHES) -> dict[str, PatchState]:
    """Apply every patch to the Nuitka of ``python``. Where an earlier version of one of our patches is
    applied (the patch was changed since the env was patched), ``reinstall`` restores Nuitka's pristine
    sources first; a Nuitka whose own code moved still stops the build."""
    folder = nuitka_package_dir(python)
    if folder is None:
        raise NuitkaPatchError(f"{python} cannot import nuitka, so the carried patches cannot be applied",
                               hint="delete the build env; the next build recreates it")
    earlier = outdated_patches(folder, patches)
    if earlier and reinstall is not None:
        log(f"nuitka patches changed since this env was patched ({', '.join(earlier)}): reinstalling Nuitka")
        reinstall()
    states = apply_to(folder, patches)
    for name, was in states.items():
        log(f"nuitka patch {name}: {'already applied' if was == 'applied' else 'applied'}")
    return states
