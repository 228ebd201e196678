"""Source patches carried against the pinned Nuitka, applied to the isolated build env's copy of Nuitka.

Each patch is an exact text replacement in one of Nuitka's C sources. Applying is idempotent (a
patched file is recognised and left alone), and a file in which the original text is not found
exactly once fails the build with :class:`NuitkaPatchError`: a Nuitka upgrade that moved the code
must be looked at, never silently built without the fix.

Only the isolated build env is patched. With ``isolated = false`` the user's own Nuitka is not
touched, and the build says that the patch is missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from compile.errors import BuildEnvError

PatchState = Literal["applied", "applies", "stale"]


class NuitkaPatchError(BuildEnvError):
    """A carried patch no longer matches the installed Nuitka's sources."""


@dataclass(frozen=True)
class SourcePatch:
    name: str
    path: str  # relative to the ``nuitka`` package folder
    before: str  # must occur exactly once in the pristine file
    after: str  # contains ``marker``, which a pristine file never does
    marker: str
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
    before=_ONEFILE_BEFORE,
    after=_ONEFILE_AFTER,
    marker="peft-engine patch onefile-release-payload",
    why="the onefile bootstrap parent kept every payload page it had unpacked resident for the whole run "
        "(about 90 MiB of a 194 MiB onefile, 2.8x the PyInstaller onefile's process tree)",
    upstream="OnefileBootstrap.c closePayloadData() is empty for an embedded payload, so the parent that "
             "waits for the child keeps the unpacked payload in its resident set; madvise(MADV_DONTNEED) "
             "(POSIX) or VirtualUnlock (Windows) on the payload range after unpacking releases it",
)

PATCHES: tuple[SourcePatch, ...] = (ONEFILE_RELEASE_PAYLOAD,)


def state(text: str, patch: SourcePatch) -> PatchState:
    if patch.marker in text:
        return "applied" if text.count(patch.after) == 1 else "stale"
    return "applies" if text.count(patch.before) == 1 else "stale"


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
    return text.replace(patch.before, patch.after)


def revert_text(text: str, patch: SourcePatch) -> str:
    """The pristine text of a patched file (for tests that check the patch against the pinned Nuitka)."""
    return text.replace(patch.after, patch.before) if state(text, patch) == "applied" else text


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


def patch_states(python: Path, patches: tuple[SourcePatch, ...] = PATCHES) -> dict[str, PatchState]:
    """What each patch is in the Nuitka of ``python``, changing nothing ({}: no Nuitka there)."""
    folder = nuitka_package_dir(python)
    if folder is None:
        return {}
    found: dict[str, PatchState] = {}
    for patch in patches:
        source = folder / patch.path
        found[patch.name] = state(source.read_text(encoding="utf-8"), patch) if source.is_file() else "stale"
    return found


def patch_build_env(python: Path, log: Callable[[str], None] = print) -> dict[str, PatchState]:
    folder = nuitka_package_dir(python)
    if folder is None:
        raise NuitkaPatchError(f"{python} cannot import nuitka, so the carried patches cannot be applied",
                               hint="delete the build env; the next build recreates it")
    states = apply_to(folder)
    for name, was in states.items():
        log(f"nuitka patch {name}: {'already applied' if was == 'applied' else 'applied'}")
    return states
