"""Dataset validation (line-level messages), upload limits, and that a rejected upload stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.services.datasets import validate_jsonl, validate_record


@pytest.mark.parametrize(("record", "problem"), [
    ({"text": "hello"}, None),
    ({"instruction": "Do", "output": "done"}, None),
    ({"instruction": "Do", "input": "x", "output": "done"}, None),
    ({"instruction": "Do"}, "missing field(s) 'output'"),
    ({"input": "x"}, "unknown record shape"),
    ({"text": ""}, "'text' must not be empty"),
    ({"text": 3}, "'text' must be a string, got int"),
    ({"prompt": "2+2=", "completion": "4"}, None),
    ({"prompt": "2+2="}, "missing field(s) 'completion'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, None),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
    ({"messages": []}, "non-empty list"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}, None),
    ({"conversations": [{"from": "human", "value": 1}]}, "must be a string"),
    ({"text": "a", "messages": []}, "mixes shapes"),
    ({"instruction": "Do", "output": 5}, "'output' must be a string, got int"),
    ({"instruction": " ", "output": "x"}, "must not be empty"),
    ([1, 2], "expected a JSON object, got list"),
])
def test_validate_record(record: object, problem: str | None) -> None:
    result = validate_record(record)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


def test_validate_jsonl_reports_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok"}\n\n{"instruction": "x"}\nnot json\n\xff\xfe\n{"text": "fine"}\n')
    report = validate_jsonl(path, max_lines=100)
    assert report.records == 2
    assert [e.split(":")[0] for e in report.errors] == ["line 3", "line 4", "line 5"]
    assert "invalid JSON" in report.errors[1] and "not UTF-8" in report.errors[2]


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_upload_list_get_delete(client: TestClient) -> None:
    body = jsonl([{"instruction": "a", "output": "b"}] * 3)
    created = client.post("/api/datasets?name=three", content=body)
    assert created.status_code == 201 and created.json()["records"] == 3
    ids = [d["id"] for d in client.get("/api/datasets").json()]
    assert ids == ["sample-instructions", "three"]
    assert client.post("/api/datasets?name=three", content=body).status_code == 409
    assert client.delete("/api/datasets/three").status_code == 204
    assert client.get("/api/datasets/three").status_code == 404
    assert client.delete("/api/datasets/sample-instructions").status_code == 409


def test_rejected_upload_stores_nothing(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/api/datasets?name=bad", content=b'{"text": "ok"}\n{"oops": 1}\n')
    assert response.status_code == 400
    assert "line 2: unknown record shape" in response.json()["error"]["message"]
    assert client.get("/api/datasets/bad").status_code == 404
    assert not [p for p in (tmp_path / "data" / "datasets").iterdir()]


def test_oversized_upload_is_413_and_stores_nothing(client: TestClient, tmp_path: Path) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    services.datasets.max_bytes = 100
    big = jsonl([{"text": "x" * 50}] * 5)
    assert client.post("/api/datasets?name=big", content=big).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while streaming
        yield big[:60]
        yield big[60:]

    assert client.post("/api/datasets?name=big", content=chunks()).status_code == 413
    assert not [p for p in (tmp_path / "data" / "datasets").iterdir()]


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "CON", "com0", "LPT9.txt", "nul.jsonl", "a.", "x" * 65])
def test_upload_names_are_checked_before_the_body(client: TestClient, name: str) -> None:
    response = client.post("/api/datasets", params={"name": name}, content=jsonl([{"text": "x"}]))
    assert response.status_code == 422 and response.json()["error"]["field"] == "name"


def test_a_64_character_name_is_accepted(client: TestClient) -> None:
    """The documented 1-64 rule holds for the whole range (a 59-64 character name was refused after the
    upload, as the file name '<name>.jsonl')."""
    name = "d" * 64
    response = client.post("/api/datasets", params={"name": name}, content=jsonl([{"text": "x"}]))
    assert response.status_code == 201, response.text


def test_names_that_differ_only_by_case_are_one_name(client: TestClient) -> None:
    assert client.post("/api/datasets?name=CaseName", content=jsonl([{"text": "x"}])).status_code == 201
    again = client.post("/api/datasets?name=casename", content=jsonl([{"text": "x"}]))
    assert again.status_code == 409 and "only by case" in again.json()["error"]["message"]
    assert client.post("/api/datasets?name=SAMPLE-INSTRUCTIONS", content=jsonl([{"text": "x"}])).status_code == 409
