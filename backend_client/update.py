"""Applying a delta update to an installed backend: the function a desktop updater calls (or ports; it
needs only the standard library).

``python -m compile delta OLD NEW --out update/`` writes a delta: ``delta.json`` (the manifest of OLD it
applies to, the manifest of NEW, and which files are new or changed) and ``files/<sha256>`` (each new or
changed file's content, once). :func:`apply_delta` turns an installed copy of OLD into NEW:

1. every file of the installed folder must match OLD's manifest, and every blob its hash: otherwise
   :class:`DeltaRefused`, and nothing was written;
2. NEW is assembled in a sibling folder: unchanged files hard-linked (or copied) from the installed
   one, changed ones from the blobs, symbolic links as the manifest says; every file of it is checked
   against NEW's manifest;
3. only then is it switched in: the installed folder is renamed aside and the new one renamed into
   its place (two renames in one folder; if the second fails, the first is undone), and the old one is
   removed.

On any mismatch before the switch, the installed folder is untouched and the partial one removed. A
running backend keeps the files it has open (POSIX); on Windows, stop it first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DELTA_FILE = "delta.json"
BLOBS = "files"
DELTA_SCHEMA = 1
CHUNK = 1 << 20


class DeltaRefused(Exception):
    """The delta does not apply to this folder, or it is damaged: nothing was changed."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def walk(root: Path) -> Iterator[Path]:
    """Every file and symbolic link under ``root`` (links are not followed), in a stable order."""
    for folder, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files + [entry for entry in folders if (Path(folder) / entry).is_symlink()]):
            yield Path(folder) / name


def scan(root: Path) -> dict[str, dict[str, Any]]:
    """The manifest entries of a folder: relative path → ``{sha256, size, executable}`` for a file,
    ``{link}`` for a symbolic link."""
    entries: dict[str, dict[str, Any]] = {}
    for path in walk(root):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            entries[relative] = {"link": os.readlink(path)}
        else:
            mode = path.stat().st_mode
            entries[relative] = {"sha256": sha256_of(path), "size": path.stat().st_size,
                                 "executable": bool(mode & stat.S_IXUSR)}
    return entries


def _check_matches(root: Path, expected: dict[str, dict[str, Any]], what: str) -> None:
    found = {path.relative_to(root).as_posix() for path in walk(root)} if root.is_dir() else set()
    missing, extra = sorted(set(expected) - found), sorted(found - set(expected))
    if missing or extra:
        raise DeltaRefused(f"{what} is not the version this delta applies to: {len(missing)} file(s) missing "
                           f"(e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})")
    for relative, entry in expected.items():
        path = root / relative
        if "link" in entry:
            if not path.is_symlink() or os.readlink(path) != entry["link"]:
                raise DeltaRefused(f"{what}: {relative} is not the link the delta expects")
        elif path.is_symlink() or sha256_of(path) != entry["sha256"]:
            raise DeltaRefused(f"{what}: {relative} differs from the version this delta applies to")


def load_delta(update: Path) -> dict[str, Any]:
    try:
        delta: dict[str, Any] = json.loads((update / DELTA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeltaRefused(f"no readable {DELTA_FILE} in {update}: {exc}") from exc
    if delta.get("schema_version") != DELTA_SCHEMA or not isinstance(delta.get("new", {}).get("files"), dict):
        raise DeltaRefused(f"{update / DELTA_FILE} is not a delta this updater reads (schema {DELTA_SCHEMA})")
    return delta


def apply_delta(installed: Path, update: Path) -> dict[str, int]:
    """Turn ``installed`` (a copy of the delta's OLD) into NEW; DeltaRefused, with ``installed``
    untouched, when anything does not match. Returns counts of what it did."""
    installed = installed.resolve()
    delta = load_delta(update)
    _check_matches(installed, delta["old"]["files"], f"the installed folder {installed}")
    blobs = update / BLOBS
    for digest in delta["blobs"]:
        blob = blobs / digest
        if not blob.is_file() or sha256_of(blob) != digest:
            raise DeltaRefused(f"the delta is damaged: {BLOBS}/{digest[:16]}… is missing or does not match its hash")
    staging = installed.with_name(f".{installed.name}.new-{uuid.uuid4().hex[:8]}")
    counts = {"linked": 0, "written": 0, "links": 0}
    try:
        for relative, entry in delta["new"]["files"].items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if "link" in entry:
                os.symlink(entry["link"], target)
                counts["links"] += 1
                continue
            old = delta["old"]["files"].get(relative)
            if old is not None and old.get("sha256") == entry["sha256"]:
                try:
                    os.link(installed / relative, target)  # the same content: shared, no copy
                except OSError:
                    shutil.copy2(installed / relative, target)
                counts["linked"] += 1
            else:
                shutil.copyfile(blobs / entry["sha256"], target)
                counts["written"] += 1
            if entry.get("executable"):
                target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        _check_matches(staging, delta["new"]["files"], "the assembled new version")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = installed.with_name(f".{installed.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(installed, aside)
    try:
        os.rename(staging, installed)
    except BaseException:
        os.rename(aside, installed)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m backend_client.update INSTALLED UPDATE``: apply a delta (exit 0), or refuse it (exit 1)
    with the reason, the installed folder untouched."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m backend_client.update INSTALLED_FOLDER DELTA_FOLDER", file=sys.stderr)
        return 2
    try:
        counts = apply_delta(Path(args[0]), Path(args[1]))
    except DeltaRefused as exc:
        print(f"refused: {exc} (nothing was changed)", file=sys.stderr)
        return 1
    print(f"updated {args[0]}: {counts['written']} files written, {counts['linked']} kept, {counts['links']} links")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
