"""User-supplied names (datasets, adapters, models) and job ids: every rule, in one place.

A name becomes a folder or file name under the data dir, so it must be safe on every OS the app runs
on, and the OpenAPI document states each rule, from the same constants the validators use
(:data:`NAME_PATTERN`, :data:`NAME_MIN_LENGTH`, :data:`NAME_MAX_LENGTH`), so a client generated from it
knows them:

- 1-64 characters: ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit;
- never a Windows device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``, ``LPT0``-``LPT9``),
  whatever the case and whatever extension follows (``nul.txt``);
- never ending in a dot (Windows drops it: ``a.`` and ``a`` are one file), never holding ``..``;
- two names that differ only by case (or Unicode normalisation) are the same name: on the
  case-insensitive file systems of Windows and macOS they are one file (:func:`name_key`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from backend.errors import InvalidInput

NAME_MIN_LENGTH = 1
NAME_MAX_LENGTH = 64
_RESERVED = r"(?:[Cc][Oo][Nn]|[Pp][Rr][Nn]|[Aa][Uu][Xx]|[Nn][Uu][Ll]|[Cc][Oo][Mm][0-9]|[Ll][Pp][Tt][0-9])"
# ECMA-262 and Python alike (OpenAPI patterns are ECMA-262): no inline flags, no lookbehind.
NAME_PATTERN = (rf"^(?!{_RESERVED}(?:\.|$))(?!.*\.\.)"
                rf"[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,{NAME_MAX_LENGTH - 2}}}[A-Za-z0-9_-])?$")
NAME_RULE = ("1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit, not ending in "
             "'.', without '..', and not a Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9)")
JOB_ID_PATTERN = r"^job-[0-9a-f]{12}$"
JOB_ID_LENGTH = 16
_NAME = re.compile(NAME_PATTERN)
_JOB_ID = re.compile(JOB_ID_PATTERN)


def is_valid_name(name: object) -> bool:
    # fullmatch: a pattern ending in `$` also matches before a final newline ("x\n")
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


def name_key(name: str) -> str:
    """What makes two names the same name: equal after Unicode normalisation and case folding."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_name(name: str, field: str = "name") -> str:
    if not is_valid_name(name):
        raise InvalidInput(f"invalid {field} {str(name)[:80]!r}: use {NAME_RULE}", field=field)
    return name


def path_inside(base: Path, name: str, field: str = "name", suffix: str = "") -> Path:
    """``base / (name + suffix)`` for a valid name, proven to stay inside ``base`` and not to be (or pass
    through) a symbolic link (:func:`backend.safe_io.confined`)."""
    from backend.safe_io import confined

    check_name(name, field)
    return confined(base, name + suffix, field=field)
