"""The patches carried against the pinned Nuitka: unified diffs in ``compile/patches/nuitka-<version>/``,
numbered in the order they apply, each with a header saying what it fixes, what it was measured to do,
its upstream status and its reproducer (``python -m compile.repro NAME``). They are derived from Nuitka
and licensed AGPLv3 (``NOTICE`` in that folder; ``docs/licence.md``).

They are applied to the **isolated build env's** copy of Nuitka only, by :func:`patch_build_env`, with
:mod:`compile.patching` (no git needed): the whole series is checked first, in memory, and nothing is
written unless every patch applies; a Nuitka whose code moved stops the build naming the patch and the
hunk. An env that holds an earlier version of a patch (its text changed since) gets the pinned Nuitka
reinstalled first; the env key includes every patch file's hash (:func:`series_digest`), so a changed
patch normally means a new env anyway. With ``isolated = false`` the user's own Nuitka is left alone,
and with ``nuitka-patches = false`` the build uses stock Nuitka, each saying what is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from compile.errors import BuildEnvError
from compile.patching import Patch, PatchError, apply_series, series, write_atomically
from compile.runner import query

PATCHES_ROOT = Path(__file__).resolve().parent / "patches"
PINNED = "4.3.3"
BYTECODE_FILE_NAME = "__bytecode.bin"  # what 0003-bytecode-outside-image writes beside the executable

PatchState = Literal["applied", "applies", "stale", "outdated"]  # outdated: an earlier version of ours


class NuitkaPatchError(BuildEnvError):
    """A carried patch no longer applies to the installed Nuitka's sources."""


def patch_folder(version: str = PINNED) -> Path:
    return PATCHES_ROOT / f"nuitka-{version}"


def carried(version: str = PINNED) -> list[Patch]:
    return series(patch_folder(version))


def series_digest(patches: list[Patch] | None = None) -> str:
    """One hash of every patch file, in order: part of the build env's key and of CI cache keys."""
    digest = hashlib.sha256()
    for patch in carried() if patches is None else patches:
        digest.update(f"{patch.source.name}\0{patch.digest}\n".encode())
    return digest.hexdigest()[:16]


_LOCATE = "import nuitka, os; print(os.path.dirname(os.path.abspath(nuitka.__file__)))"


def nuitka_package_dir(python: Path) -> Path | None:
    """The ``nuitka`` package folder of the interpreter ``python`` (None: not installed there)."""
    out = query([str(python), "-c", _LOCATE])
    folder = Path(out.stdout.strip()) if out is not None and out.returncode == 0 and out.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None


def _texts(site: Path, patches: list[Patch]) -> dict[str, str] | None:
    texts = {}
    for patch in patches:
        for file in patch.files:
            path = site / file.path
            if not path.is_file():
                return None
            texts[file.path] = path.read_text(encoding="utf-8")
    return texts


def found_states(site: Path, patches: list[Patch]) -> dict[str, PatchState]:
    """What each patch is in the Nuitka under ``site`` (the folder holding ``nuitka/``), changing nothing."""
    texts = _texts(site, patches)
    if texts is None:
        return dict.fromkeys((patch.name for patch in patches), "stale")
    try:
        apply_series(patches, texts, reverse=True)
        return dict.fromkeys((patch.name for patch in patches), "applied")
    except PatchError:
        pass
    states: dict[str, PatchState] = {}
    current = dict(texts)
    for patch in patches:  # in order, each on the text the ones before it leave
        try:
            current.update(apply_series([patch], current).texts)
            states[patch.name] = "applies"
            continue
        except PatchError:
            pass
        try:
            apply_series([patch], current, reverse=True)
            states[patch.name] = "applied"
        except PatchError:
            marked = any(patch.marker in current[file.path] for file in patch.files)
            states[patch.name] = "outdated" if marked else "stale"
    return states


def patch_states(python: Path, patches: list[Patch] | None = None) -> dict[str, PatchState]:
    """What each patch is in the Nuitka of ``python`` ({}: no Nuitka there)."""
    folder = nuitka_package_dir(python)
    return {} if folder is None else found_states(folder.parent, carried() if patches is None else patches)


def apply_to(site: Path, patches: list[Patch]) -> dict[str, PatchState]:
    """Apply the series to the Nuitka under ``site``: checked whole in memory first, then written. Returns
    what each patch was before; NuitkaPatchError (nothing written) when the series does not apply."""
    before = found_states(site, patches)
    if all(state == "applied" for state in before.values()):
        return before
    texts = _texts(site, patches)
    pending = [patch for patch in patches if before[patch.name] != "applied"]
    try:
        if texts is None:
            raise PatchError("a file the patches change does not exist")
        result = apply_series(pending, texts)
    except PatchError as exc:
        failing = next((name for name, state in before.items() if state != "applies"), patches[0].name)
        raise NuitkaPatchError(
            f"the carried Nuitka patch {failing!r} no longer applies to {site / 'nuitka'}: {exc} (was Nuitka "
            "upgraded?)",
            hint=f"port the patches in {patch_folder().relative_to(PATCHES_ROOT.parent.parent)} to the new Nuitka "
                 "(python -m compile.repro shows which are still needed), or pin the Nuitka they apply to") from exc
    write_atomically(site, {path: text for path, text in result.texts.items() if path in result.changed})
    return before


def patch_build_env(python: Path, log: Callable[[str], None] = print, reinstall: Callable[[], None] | None = None,
                    patches: list[Patch] | None = None) -> dict[str, PatchState]:
    """Apply every patch to the Nuitka of ``python``. Where an earlier version of one of ours is applied,
    ``reinstall`` restores Nuitka's pristine sources first; a Nuitka whose own code moved stops the build."""
    patches = carried() if patches is None else patches
    folder = nuitka_package_dir(python)
    if folder is None:
        raise NuitkaPatchError(f"{python} cannot import nuitka, so the carried patches cannot be applied",
                               hint="delete the build env; the next build recreates it")
    earlier = [name for name, state in found_states(folder.parent, patches).items() if state == "outdated"]
    if earlier and reinstall is not None:
        log(f"nuitka patches changed since this env was patched ({', '.join(earlier)}): reinstalling Nuitka")
        reinstall()
    states = apply_to(folder.parent, patches)
    for name, was in states.items():
        log(f"nuitka patch {name}: {'already applied' if was == 'applied' else 'applied'}")
    return states
