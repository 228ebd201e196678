"""Bad input answers 4xx, a full disk 507, never 500; and what the OpenAPI document promises.

Each case here was a 500 (or accepted) when the server was fuzzed from outside (issue 11).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.api import deps
from backend.api.routes.jobs import MAX_EVENT_ID, parse_last_event_id
from backend.names import is_valid_name
from backend.runtime_paths import current_layout
from backend.services.container import resolve_data_dir
from backend.services.datasets import validate_jsonl
from backend.services.worker import failure_message
from backend.settings import Settings
from backend.storage_errors import disk_full


@pytest.mark.parametrize("name", ["x\n", "ad\n", "x\r", "x\n\n", "tiny-llama\n"])
def test_a_name_ending_in_a_newline_is_refused(name: str) -> None:
    assert not is_valid_name(name)


def test_newline_names_are_422_everywhere(client: TestClient) -> None:
    """The pattern is in the document, so a name that breaks it is a schema violation (422), everywhere."""
    base = {"model": "tiny-llama", "dataset": "sample-instructions"}
    assert client.post("/api/jobs", json={**base, "adapter_name": "ad\n"}).status_code == 422
    assert client.post("/api/models", json={"name": "x\n", "path": "/tmp"}).status_code == 422
    assert client.post("/api/generate", json={"model": "tiny-llama\n", "prompt": "hi"}).status_code == 422
    assert client.post("/api/datasets?name=x%0A", content=b'{"text": "a"}\n').status_code == 422


@pytest.mark.parametrize("temperature", [1.1125369292536007e-308, 5e-324, 0.009])
def test_a_temperature_too_small_to_sample_with_is_422_naming_the_field(client: TestClient,
                                                                        temperature: float) -> None:
    """schemathesis found 1e-308: the logits divided by it overflow, and sampling failed with a 500."""
    answer = client.post("/api/generate", json={"model": "tiny-llama", "prompt": "hi", "temperature": temperature})
    assert answer.status_code == 422, answer.text
    assert "temperature" in answer.text and "use 0 for greedy decoding" in answer.text


@pytest.mark.parametrize(("line", "says"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"text": ' + "1" * 10_000 + "}", "unreadable JSON value"),
])
def test_a_dataset_line_json_cannot_parse_is_a_line_error(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    report = validate_jsonl(path, 100)
    assert report.records == 1
    assert len(report.errors) == 1 and report.errors[0].startswith("line 2:") and says in report.errors[0]


def test_such_an_upload_is_400_and_stores_nothing(client: TestClient) -> None:
    response = client.post("/api/datasets?name=deep", content=("[" * 50_000 + "]" * 50_000).encode())
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]
    assert client.get("/api/datasets/deep").status_code == 404


@pytest.mark.parametrize(("header", "after"), [
    (None, 0), ("", 0), ("7", 7), (" 12 ", 12), ("junk", 0), ("²", 0), ("-3", 0), ("1e3", 0),
    ("100000000000000000000", MAX_EVENT_ID), ("9" * 5000, MAX_EVENT_ID), ("0", 0),
])
def test_last_event_id_is_parsed_never_trusted(header: str | None, after: int) -> None:
    assert parse_last_event_id(header) == after


@pytest.mark.parametrize("header", ["²", "9" * 5000, "100000000000000000000"])
def test_a_strange_last_event_id_never_breaks_the_stream(client: TestClient, header: str) -> None:
    created = client.post("/api/jobs", json={"model": "tiny-llama", "dataset": "sample-instructions"})
    job_id = created.json()["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 202
    response = client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": header.encode("utf-8")})
    assert response.status_code == 200
    assert response.text.startswith("retry:")


@pytest.mark.parametrize("path", ["/tmp/a\x00b", "/" + "x" * 5000, "x" * 300])
def test_register_rejects_impossible_paths_as_4xx(client: TestClient, path: str) -> None:
    response = client.post("/api/models", json={"name": "m1", "path": path})
    assert response.status_code in (404, 422), response.text  # not a model folder, or not a path
    assert response.json()["error"]["field"] == "path"


def test_bundle_files_rejects_nul_and_reports_bad_paths(client: TestClient) -> None:
    assert client.post("/api/system/bundle-files", json={"paths": ["a\x00b"]}).status_code == 422
    answer = client.post("/api/system/bundle-files", json={"paths": ["x" * 300 + "/y"]})
    assert answer.status_code == 200 and answer.json()["files"][0]["ok"] is False


# -- a full disk ----------------------------------------------------------------------------------------
class FullDiskDatasets:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def check_new_name(self, name: str) -> None:
        pass

    async def upload(self, *args: object, **kwargs: object) -> None:
        raise self.exc


@pytest.mark.parametrize(("exc", "status"), [
    (OSError(errno.ENOSPC, "No space left on device"), 507),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 507),
    (sqlite3.OperationalError("database or disk is full"), 507),
    (OSError(errno.EIO, "Input/output error"), 500),
    (sqlite3.OperationalError("no such table: x"), 500),
])
def test_a_full_disk_is_507_saying_what_to_do(app: FastAPI, client: TestClient, exc: BaseException,
                                               status: int) -> None:
    app.dependency_overrides[deps.get_datasets] = lambda: FullDiskDatasets(exc)
    response = client.post("/api/datasets?name=big", content=b'{"text": "a"}\n')
    assert response.status_code == status
    error = response.json()["error"]
    if status == 507:
        assert error["code"] == "insufficient_storage"
        assert "is full: free some space there, then retry; nothing was changed" in error["message"]
    else:
        assert error["code"] == "internal"


def test_disk_full_is_found_through_causes() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    assert not disk_full(ValueError("x"))


@pytest.mark.parametrize(("exc", "says"), [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk holding the data dir is full"),
    (sqlite3.OperationalError("database or disk is full"), "then resume the job from its last checkpoint"),
    (type("SafetensorError", (Exception,), {})(
        "Error while serializing: I/O error: No space left on device (os error 28)"),
     "the disk holding the data dir is full"),  # seen from the worker of a PyInstaller onedir build
    (ValueError("bad batch"), "ValueError: bad batch"),
])
def test_a_worker_that_hits_a_full_disk_says_what_to_do(exc: BaseException, says: str) -> None:
    """The worker's checkpoint write may meet the full disk before the server's own writes do."""
    message = failure_message(exc)
    assert says in message and str(exc) in message
    assert ("full" in message) == disk_full(exc)


# -- the data dir is private -----------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_data_dir_is_created_private_and_an_open_one_is_closed(tmp_path: Path) -> None:
    fresh = resolve_data_dir(Settings(data_dir=tmp_path / "fresh", token="x" * 20), current_layout())
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    resolve_data_dir(Settings(data_dir=open_dir, token="x" * 20), current_layout())
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o700


# -- routing errors and the OpenAPI document --------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/api/jobs", "GET, POST"),
    ("PATCH", "/api/models/tiny-llama", "GET, DELETE"),
    ("GET", "/api/shutdown", "POST"),
    ("DELETE", "/health", "GET"),
])
def test_405_lists_every_method_of_the_path(client: TestClient, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unknown_routes_answer_in_the_error_format(client: TestClient) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_openapi_types_every_answer_and_declares_every_error(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert "401" in responses, f"{method} {path} does not declare 401"
            for status, response in responses.items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and status != "204" and schema in (None, {}) \
                        and "text/event-stream" not in response.get("content", {}):
                    untyped.append(f"{method.upper()} {path} {status}")
                if (status.startswith(("4", "5")) and status != "401") or status == "401":
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert not untyped, f"untyped answers: {untyped}"
    expected = {("post", "/api/jobs"): {"400", "409", "422", "507"},
                ("post", "/api/datasets"): {"400", "409", "413", "422", "507"},
                ("get", "/api/jobs/{job_id}"): {"404"},
                ("post", "/api/jobs/{job_id}/cancel"): {"404", "409"}}
    for (method, path), statuses in expected.items():
        assert statuses <= set(spec["paths"][path][method]["responses"]), (method, path)
    operation_ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    for ops in spec["paths"].values():
        for op in ops.values():
            for response in op["responses"].values():
                for name, link in response.get("links", {}).items():
                    assert link["operationId"] in operation_ids, f"link {name} names no operation"
    assert json.dumps(spec)  # serialisable as it is served


def test_a_streamed_generation_is_a_documented_answer(client: TestClient) -> None:
    """schemathesis at 50 examples per operation: ``"stream": true`` answered an undocumented text/event-stream."""
    answer = client.get("/openapi.json").json()["paths"]["/api/generate"]["post"]["responses"]["200"]
    assert set(answer["content"]) == {"application/json", "text/event-stream"}
