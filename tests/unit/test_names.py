"""User-supplied names never escape their folder (property tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.errors import InvalidInput
from backend.names import is_valid_name, path_inside

BASE = Path("/srv/data/datasets")


@given(st.text(max_size=80))
def test_any_string_is_rejected_or_stays_inside(name: str) -> None:
    try:
        path = path_inside(BASE, name)
    except InvalidInput as exc:
        assert "invalid name" in exc.message and exc.field == "name"
        return
    assert path.parent == BASE.resolve()
    assert path.name == name


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}", fullmatch=True))
def test_plain_names_are_accepted(name: str) -> None:
    if name.upper() in {"CON", "PRN", "AUX", "NUL"} or (name.upper()[:3] in {"COM", "LPT"} and len(name) == 4):
        return
    assert is_valid_name(name)


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "a\\b", "CON", "nul.txt", "x.", "", " a", "a" * 65,
                                  "a..b", "-lead", "line\nbreak", "é"])
def test_dangerous_names_are_rejected(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidInput):
        path_inside(BASE, name)
