"""The layers of a built artifact, and their manifest (``dist/<variant>/layers.json``, written by every build).

A folder build is layered by nature; each file belongs to one layer, by its path in the artifact:

- ``sidecar/<name>``: one per top-level package of the ML sidecar (``ml_sidecar/torch``, its
  ``torch-2.13.0.dist-info``; ``nvidia/<package>`` each a layer of its own): what a torch or a
  transformers release changes;
- ``web-stack``: the bytecode of the modules Nuitka keeps uncompiled (``__bytecode.bin``): what a change
  to fastapi, pydantic, starlette or uvicorn changes;
- ``resources``: the bundled data files (``backend/resources``);
- ``runtime``: everything else: the compiled backend, the Python runtime and its extension modules (a
  PyInstaller onedir is all runtime and resources); a onefile is one file, one layer.

A layer's hash is the SHA-256 of its files' ``path  sha256`` lines in path order: it changes when, and
only when, a file of the layer changes, appears or goes. ``python -m compile delta`` compares two
manifests to ship only what changed (:mod:`compile.delta`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backend_client.update import scan

LAYERS_FILE = "layers.json"
LAYERS_SCHEMA = 1
SIDECAR = "ml_sidecar"
BYTECODE_FILES = ("__bytecode.bin",)
RESOURCES = "backend/resources/"


def layer_of(relative: str) -> str:
    """The layer of a file, from its path relative to the artifact root (``peft_engine/``)."""
    parts = relative.split("/")
    if parts[0] == SIDECAR and len(parts) > 1:
        top = parts[1]
        if top == "nvidia" and len(parts) > 2:
            return f"sidecar/nvidia-{parts[2]}"
        # a distribution's metadata goes with its package: torch-2.13.0.dist-info -> torch
        name = re.sub(r"-[^-]+\.(dist-info|egg-info)$", "", top).removesuffix(".py")
        return f"sidecar/{re.sub(r'[-_.]+', '-', name).lower()}"
    if relative in BYTECODE_FILES:
        return "web-stack"
    if relative.startswith(RESOURCES) or relative.startswith("_internal/" + RESOURCES):
        return "resources"
    return "runtime"


def manifest(root: Path, variant: str, version: str) -> dict[str, Any]:
    """The manifest of the artifact at ``root`` (a folder, or a onefile): every file with its hash, size
    and executable bit, and each layer's hash, size and file count."""
    if root.is_file():
        files = scan(root.parent)
        files = {root.name: files[root.name]}
    else:
        files = scan(root)
    return {"schema_version": LAYERS_SCHEMA, "variant": variant, "version": version, "root": root.name,
            "files": files, "layers": layers(files)}


def layers(files: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for relative, entry in sorted(files.items()):
        grouped.setdefault(layer_of(relative), []).append((relative, entry))
    result = {}
    for name, members in sorted(grouped.items()):
        digest = hashlib.sha256()
        for relative, entry in members:
            digest.update(f"{relative}  {entry.get('sha256') or 'link:' + str(entry.get('link'))}\n".encode())
        result[name] = {"sha256": digest.hexdigest(), "files": len(members),
                        "bytes": sum(int(entry.get("size", 0)) for _, entry in members)}
    return result
