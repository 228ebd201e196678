"""User-supplied names (datasets, adapters, models) and the paths made from them.

A name becomes a folder or file name under the data dir, so it must not escape it or be something a
file system treats specially (``..``, separators, Windows device names, trailing dots or spaces).
"""

from __future__ import annotations

import re
from pathlib import Path

from backend.errors import InvalidInput

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {
    f"LPT{i}" for i in range(1, 10)
}


def is_valid_name(name: str) -> bool:
    # fullmatch, not match: a pattern ending in `$` also matches before a final newline ("x\n")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return False
    if name.endswith(".") or ".." in name:
        return False
    return name.split(".")[0].upper() not in _WINDOWS_RESERVED


def check_name(name: str, field: str = "name") -> str:
    if not is_valid_name(name):
        raise InvalidInput(f"invalid {field} {name!r}: use {NAME_RULE}", field=field)
    return name


def path_inside(base: Path, name: str, field: str = "name") -> Path:
    """``base / name`` for a valid name, proven to stay inside ``base``."""
    check_name(name, field)
    resolved_base = base.resolve()
    candidate = (resolved_base / name).resolve()
    if candidate.parent != resolved_base:
        raise InvalidInput(f"invalid {field} {name!r}: it resolves outside its folder", field=field)
    return candidate
