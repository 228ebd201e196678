from __future__ import annotations

import pytest

from backend.api.routes.jobs import sse_message
from backend_client.http import parse_sse
from backend_client.manager import BackendStartError, ReadyInfo


def test_sse_roundtrip() -> None:
    text = "retry: 1000\n\n" + sse_message(1, "step", {"step": 1, "loss": 2.5}) + ": keep-alive\n\n" + sse_message(
        2, "state", {"status": "completed"})
    assert parse_sse(text) == [
        {"id": "1", "event": "step", "data": {"step": 1, "loss": 2.5}},
        {"id": "2", "event": "state", "data": {"status": "completed"}},
    ]


@pytest.mark.parametrize("line", ["hello", '{"event": "log"}', '{"event": "ready", "port": 1}', "[1]"])
def test_bad_ready_lines_are_explained(line: str) -> None:
    with pytest.raises(BackendStartError, match="ready"):
        ReadyInfo.parse(line)
