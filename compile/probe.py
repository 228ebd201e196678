"""Runs *inside the build environment* (``python compile/probe.py ROOTS...``) and prints JSON facts the
planners need: installed distributions with their requirements, import names and files, the names
the backend imports, and the standard-library modules that given distributions import (from their
Python sources and their extension modules).

Standard library only (plus ``packaging``, which transformers requires anyway), so it runs in any
environment without importing this project's tooling.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

PROBE_VERSION = 4  # part of cache keys: bump when the output changes


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(dist: metadata.Distribution, by_name: dict[str, metadata.Distribution] | None = None,
                      extras: tuple[str, ...] = ("",), seen: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """What ``dist`` requires when installed with ``extras`` ("" is none), on this platform; a
    requirement that asks for extras of another distribution (``cuda-toolkit[cudart,cublas]``, as the
    CUDA build of torch does) brings what those extras require too, as pip installed it."""
    from packaging.requirements import Requirement

    names: list[str] = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not any(requirement.marker.evaluate({"extra": extra})
                                                      for extra in extras):
            continue
        name = canonical(requirement.name)
        names.append(name)
        target = (by_name or {}).get(name)
        for extra in sorted(requirement.extras):
            key = (name, extra)
            if target is not None and key not in seen:
                names.extend(requirement_names(target, by_name, (extra,), seen | {key}))
    return list(dict.fromkeys(names))


def import_names(dist: metadata.Distribution) -> list[str]:
    names: set[str] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in ("..", "") or parts[0].endswith((".dist-info", ".data", ".egg-info")):
            continue
        if len(parts) > 1 and parts[0] != "__pycache__":
            names.add(parts[0])
        elif parts[0].endswith(".py"):
            names.add(parts[0][:-3])
        elif ".cpython-" in parts[0] or parts[0].endswith((".so", ".pyd")):
            names.add(parts[0].split(".")[0])
    return sorted(name for name in names if name.isidentifier() or name.endswith(".libs"))


def distributions() -> dict[str, dict[str, Any]]:
    result = {}
    by_name: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        by_name.setdefault(canonical(dist.metadata["Name"]), dist)
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in result:
            continue
        files = [str(f) for f in dist.files or [] if f.parts and f.parts[0] != ".."]
        result[name] = {
            "name": name,
            "version": dist.version,
            "requires": requirement_names(dist, by_name),
            "imports": import_names(dist),
            "location": str(Path(str(dist.locate_file(""))).resolve()),
            "files": files,
        }
    return result


def package_imports(folder: Path) -> list[str]:
    """Top-level names imported anywhere in a package's sources, function-level imports included:
    what Nuitka would follow."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names)


_EXTENSION_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{1,40}")


def stdlib_imports(folders: list[Path]) -> dict[str, list[str]]:
    """Top-level stdlib names imported by the Python files and named in the extension modules under
    ``folders``; each mapped to one example of where it was seen."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError):
                continue  # templates and py2 leftovers shipped as data
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in stdlib:
                        found.setdefault(name, [str(path)])
        for path in folder.rglob("*.so"):
            if ".cpython-" not in path.name:
                continue  # plain shared libraries (libtorch) do not import Python modules
            for match in set(_EXTENSION_NAME.findall(path.read_bytes())):
                name = match.decode()
                if name in stdlib and name not in ("sys", "builtins"):
                    found.setdefault(name, [str(path)])
    return found


def main(argv: list[str]) -> int:
    """``probe.py facts``: distributions and startup imports; ``probe.py stdlib DIST...``: stdlib imports."""
    command, names = (argv[1] if len(argv) > 1 else "facts"), argv[2:]
    dists = distributions()
    if command == "facts":
        result: dict[str, Any] = {
            "python": list(sys.version_info[:3]),
            "executable": sys.executable,
            "distributions": dists,
            "backend_imports": package_imports(Path.cwd() / "backend"),
        }
    elif command == "stdlib":
        folders = [Path(dists[name]["location"]) / top for name in names for top in dists[name]["imports"]]
        found = stdlib_imports([folder for folder in folders if folder.is_dir()])
        result = {"stdlib_imports": {}}
        for name in sorted(found):
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError, AttributeError):
                spec = None  # `from typing import Any` also records "typing.Any", which is no module
            if spec is None:
                continue  # or another platform's module (msvcrt, winreg...): not on this one
            if name in sys.builtin_module_names or spec.origin in ("built-in", "frozen"):
                continue  # part of the interpreter itself: always there
            result["stdlib_imports"][name] = {"package": spec.submodule_search_locations is not None,
                                              "seen_in": found[name][0]}
    else:
        print(f"unknown probe command {command!r}: use facts or stdlib", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
