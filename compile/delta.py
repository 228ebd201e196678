"""``python -m compile delta OLD NEW --out update/``: what an installed OLD needs to become NEW.

OLD and NEW are two builds of one variant (``dist/<variant>`` folders, or their artifact folders). The
delta holds NEW's manifest, OLD's (what it applies to), and the content of each file that is new or
changed, once per distinct content (``files/<sha256>``); a file that only moved costs nothing. The
desktop updater applies it with :func:`backend_client.update.apply_delta`, which checks every hash
before it switches over.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_client.update import BLOBS, DELTA_FILE, DELTA_SCHEMA
from compile.artifacts import Artifact, locate
from compile.errors import ArtifactError, UsageError
from compile.layers import LAYERS_FILE, manifest


@dataclass(frozen=True)
class DeltaSummary:
    files_new: int
    files_changed: int
    files_deleted: int
    blob_bytes: int
    full_bytes: int
    layers_changed: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.blob_bytes / self.full_bytes if self.full_bytes else 0.0


def artifact_manifest(artifact: Artifact) -> dict[str, Any]:
    """The build's layers.json (written by the build), else computed from the files now."""
    recorded = artifact.folder / LAYERS_FILE
    if recorded.is_file():
        loaded: dict[str, Any] = json.loads(recorded.read_text(encoding="utf-8"))
        return loaded
    return manifest(artifact.root, artifact.variant.name, str(artifact.record.get("options", {}).get("version")))


def make_delta(old_path: Path, new_path: Path, out: Path) -> DeltaSummary:
    old, new = locate(old_path), locate(new_path)
    if old.variant != new.variant:
        raise UsageError(f"a delta goes from one build of a variant to another: {old.variant} -> {new.variant}")
    if new.variant.onefile:
        raise UsageError(f"{new.variant} is one file: there is nothing to ship but all of it",
                         hint="deltas are for folder builds (nuitka-standalone, pyinstaller-onedir)")
    old_manifest, new_manifest = artifact_manifest(old), artifact_manifest(new)
    old_files, new_files = old_manifest["files"], new_manifest["files"]
    changed = [path for path, entry in new_files.items() if path in old_files and old_files[path] != entry]
    added = [path for path in new_files if path not in old_files]
    deleted = sorted(set(old_files) - set(new_files))
    have = {entry.get("sha256") for entry in old_files.values()}
    needed: dict[str, str] = {}  # sha256 -> a path in NEW with that content
    for path in (*added, *changed):
        digest = new_files[path].get("sha256")
        if digest and digest not in have and digest not in needed:
            needed[digest] = path
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty", hint="give a new folder for the delta")
    (out / BLOBS).mkdir(parents=True, exist_ok=True)
    for digest, path in needed.items():
        shutil.copyfile(new.root / path, out / BLOBS / digest)
    old_layers, new_layers = old_manifest["layers"], new_manifest["layers"]
    layers_changed = tuple(sorted(name for name in set(old_layers) | set(new_layers)
                                  if old_layers.get(name, {}).get("sha256") != new_layers.get(name, {}).get("sha256")))
    delta = {"schema_version": DELTA_SCHEMA, "variant": new.variant.name, "old": old_manifest, "new": new_manifest,
             "added": sorted(added), "changed": sorted(changed), "deleted": deleted, "blobs": sorted(needed),
             "layers_changed": list(layers_changed)}
    (out / DELTA_FILE).write_text(json.dumps(delta, indent=1), encoding="utf-8")
    blob_bytes = sum(int(new_files[path]["size"]) for path in needed.values())
    full_bytes = sum(int(entry.get("size", 0)) for entry in new_files.values())
    return DeltaSummary(len(added), len(changed), len(deleted), blob_bytes, full_bytes, layers_changed)


def describe(summary: DeltaSummary) -> str:
    return (f"{summary.files_new} new, {summary.files_changed} changed, {summary.files_deleted} deleted files; "
            f"{summary.blob_bytes / 2**20:.1f} MiB to ship of {summary.full_bytes / 2**20:.1f} MiB "
            f"({summary.ratio:.1%}); layers changed: {', '.join(summary.layers_changed) or 'none'}")


__all__ = ["ArtifactError", "DeltaSummary", "describe", "make_delta"]
