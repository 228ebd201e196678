"""The HTTP behaviour suite: black-box tests of one variant (``--artifact``, default source), each
driving real servers over HTTP only, as the desktop app does. Every test here is ``integration``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/behaviour/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.integration)
