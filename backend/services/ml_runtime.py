"""The one place that makes torch / transformers / peft importable (called by :mod:`backend.bootstrap`).

From source they are ordinary installed packages. A Nuitka build keeps them out of the compiled
binary and ships them in a *sidecar* folder (see ``runtime_paths.sidecar_dirs``). That folder goes on
``sys.path`` when the process starts, in the server and in every training worker alike, so no code
path can reach an ML import before it is importable: the build imports exactly what source would.

Appending a folder imports nothing. Startup stays free of the ML stack because nothing imports it
until a request needs it (``tests/unit/test_lazy_imports.py``), as from source; the folder is only
listed when an import misses everywhere before it. Measured (callgrind, spawn to ready, standalone,
same binary with and without its sidecar found): +3.8 M of 1,781 M instructions (0.2 %).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

installed: tuple[Path, ...] = ()  # the sidecar folders this process put on sys.path


def install_sidecar(candidates: Iterable[Path], path: list[str] | None = None) -> tuple[Path, ...]:
    """Append every existing sidecar folder to ``path`` (``sys.path``) once; returns those added."""
    search_path = sys.path if path is None else path
    added = []
    for folder in candidates:
        if folder.is_dir() and str(folder) not in search_path:
            search_path.append(str(folder))
            added.append(folder)
    return tuple(added)


def install(candidates: Iterable[Path]) -> tuple[Path, ...]:
    """Put this process's sidecar on ``sys.path`` and remember it; returns every folder installed so far."""
    global installed
    installed = tuple(dict.fromkeys((*installed, *install_sidecar(candidates))))
    return installed


def sidecar_modules(folders: Iterable[Path] | None = None) -> list[str]:
    """Names of the loaded modules whose file lies in a sidecar folder (none before the first ML use)."""
    roots = [str(folder) + os.sep for folder in (installed if folders is None else folders)]
    if not roots:
        return []
    found = []
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if isinstance(location, str) and location.startswith(tuple(roots)):
            found.append(name)
    return sorted(found)
