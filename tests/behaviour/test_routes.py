"""Every route's success and error answers, on one server (nothing here loads the ML stack)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.runtime_paths import current_layout
from backend_client.manager import BackendProcess
from tests.support import SAMPLE_DATASET, TINY_MODEL, RunningBackends, Target
from tests.support.jobs_api import upload_sample


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[BackendProcess]:
    running = RunningBackends(tmp_path_factory.mktemp("routes"), target)
    try:
        _, process = running.start()
        yield process
    finally:
        running.close()


def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]


def test_unknown_route_and_method(server: BackendProcess) -> None:
    assert server.request("GET", "/api/nothing-here").status == 404
    response = server.request("DELETE", "/api/presets")
    assert response.status == 405
    assert "GET" in response.headers.get("allow", response.headers.get("Allow", "")), response.headers


def test_presets_resources_process(server: BackendProcess) -> None:
    presets = server.request("GET", "/api/presets").json()
    assert "llama" in presets and presets["llama"]["target_modules"] == ["q_proj", "v_proj"]
    resources = server.request("GET", "/api/system/resources").json()
    assert resources["ok"] is True and all(entry["ok"] for entry in resources["files"])
    process = server.request("GET", "/api/system/process").json()
    assert process["pid"] == server.server_pid and "backend.main" in process["modules"]


def test_bundle_files_never_reads_outside_the_bundle(server: BackendProcess) -> None:
    answer = server.request("POST", "/api/system/bundle-files",
                            {"paths": ["backend/resources/defaults.json", "../../../etc/passwd", "no/such/file"]})
    assert answer.status == 200
    files = {entry["path"]: entry for entry in answer.json()["files"]}
    assert files["backend/resources/defaults.json"]["ok"] is True
    assert files["../../../etc/passwd"] == {"path": "../../../etc/passwd", "ok": False, "error": "outside the bundle"}
    assert files["no/such/file"]["ok"] is False
    assert server.request("POST", "/api/system/bundle-files", {"paths": []}).status == 422


def test_models(server: BackendProcess, tmp_path: Path) -> None:
    listed = server.request("GET", "/api/models").json()
    assert listed[0]["id"] == TINY_MODEL
    assert server.request("GET", f"/api/models/{TINY_MODEL}").json()["source"] == "bundled"
    missing = server.request("GET", "/api/models/nope")
    assert missing.status == 404 and TINY_MODEL in error_of(missing)["allowed"]

    folder = tmp_path / "my-model"
    shutil.copytree(current_layout().resources / "models" / TINY_MODEL, folder)
    created = server.request("POST", "/api/models", {"name": "mine", "path": str(folder)})
    assert created.status == 201, created.body
    assert created.json()["architecture"] == "llama" and created.json()["source"] == "local"
    assert server.request("POST", "/api/models", {"name": "mine", "path": str(folder)}).status == 409
    not_a_folder = server.request("POST", "/api/models", {"name": "other", "path": str(tmp_path / "absent")})
    assert not_a_folder.status == 404 and error_of(not_a_folder)["field"] == "path"
    (tmp_path / "empty").mkdir()
    no_config = server.request("POST", "/api/models", {"name": "other", "path": str(tmp_path / "empty")})
    assert no_config.status == 404 and "is not a model folder" in error_of(no_config)["message"]
    assert error_of(no_config)["message"].replace("empty", "X") == error_of(not_a_folder)["message"].replace(
        "absent", "X"), "one answer for 'not a model folder', whatever the reason"
    bad_name = server.request("POST", "/api/models", {"name": "../escape", "path": str(folder)})
    assert bad_name.status == 422 and error_of(bad_name)["field"] == "name"
    assert server.request("POST", "/api/models", {"name": "x"}).status == 422
    assert server.request("DELETE", f"/api/models/{TINY_MODEL}").status == 409
    assert server.request("DELETE", "/api/models/mine").status == 204
    assert folder.is_dir(), "a registered folder belongs to the user: never deleted"
    assert server.request("DELETE", "/api/models/mine").status == 404


def test_datasets(server: BackendProcess) -> None:
    uploaded = upload_sample(server, "routes-set", 10)
    assert uploaded["records"] == 10 and uploaded["source"] == "uploaded"
    listed = [row["id"] for row in server.request("GET", "/api/datasets").json()]
    assert listed[0] == SAMPLE_DATASET and "routes-set" in listed
    assert server.request("GET", "/api/datasets/routes-set").json()["records"] == 10
    again = server.request("POST", "/api/datasets?name=routes-set", raw_body=b'{"text": "x"}\n')
    assert again.status == 409

    bad = server.request("POST", "/api/datasets?name=bad-set", raw_body=b'{"text": "ok"}\n{"nope": 1}\nnot json\n')
    assert bad.status == 400
    message = error_of(bad)["message"]
    assert "line 2: unknown record shape" in message and "line 3" in message and "nothing was stored" in message
    assert server.request("GET", "/api/datasets/bad-set").status == 404

    empty = server.request("POST", "/api/datasets?name=empty-set", raw_body=b"\n\n")
    assert empty.status == 400 and "no records" in error_of(empty)["message"]
    assert server.request("POST", "/api/datasets?name=..", raw_body=b'{"text": "x"}\n').status == 422
    assert server.request("POST", "/api/datasets", raw_body=b'{"text": "x"}\n').status == 422
    too_big = server.request("POST", "/api/datasets?name=big-set", raw_body=b"x",
                             headers={"Content-Length": str(10**10)})
    assert too_big.status == 413

    assert server.request("DELETE", f"/api/datasets/{SAMPLE_DATASET}").status == 409
    assert server.request("DELETE", "/api/datasets/routes-set").status == 204
    assert server.request("GET", "/api/datasets/routes-set").status == 404


def test_jobs_reject_bad_requests_naming_the_field(server: BackendProcess) -> None:
    base = {"model": TINY_MODEL, "dataset": SAMPLE_DATASET}
    cases = [
        ({**base, "model": "nope"}, 404, "model"),  # what the body names is missing: 404, as for a path
        ({**base, "dataset": "nope"}, 404, "dataset"),
        ({**base, "target_modules": ["nope_proj"]}, 409, "target_modules"),  # the model lacks it
        ({**base, "adapter_name": "bad/name"}, 422, "adapter_name"),
        ({**base, "target_modules": [""]}, 422, "target_modules.0"),
        ({**base, "device": "tpu"}, 422, "device"),
        ({**base, "lora_r": 0}, 422, "lora_r"),
        ({**base, "learning_rate": "fast"}, 422, "learning_rate"),
        ({**base, "surprise": 1}, 422, "surprise"),
    ]
    for body, status, field in cases:
        response = server.request("POST", "/api/jobs", body)
        assert response.status == status, (body, response.body)
        assert error_of(response)["field"] == field, response.body
    assert server.request("POST", "/api/jobs", raw_body=b"{not json",
                          headers={"Content-Type": "application/json"}).status == 422
    for method, path in (("GET", "/api/jobs/job-000000000000"), ("GET", "/api/jobs/job-000000000000/events"),
                         ("POST", "/api/jobs/job-000000000000/cancel"), ("POST", "/api/jobs/job-000000000000/resume")):
        assert server.request(method, path).status == 404, path
        assert server.request(method, path.replace("job-000000000000", "job-nope")).status == 422, path
    assert isinstance(server.request("GET", "/api/jobs").json(), list)


def test_adapters_and_generate_errors(server: BackendProcess) -> None:
    assert server.request("GET", "/api/adapters").json() == []
    assert server.request("GET", "/api/adapters/nope").status == 404
    assert server.request("DELETE", "/api/adapters/nope").status == 404
    assert server.request("POST", "/api/adapters/nope/merge", {"name": "merged"}).status == 404
    cases = [
        ({"model": "nope", "prompt": "hi"}, 404, "model"),
        ({"model": TINY_MODEL, "adapter": "nope", "prompt": "hi"}, 404, "adapter"),
        ({"model": TINY_MODEL, "prompt": ""}, 422, "prompt"),
        ({"model": TINY_MODEL, "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, 422, None),
        ({"model": TINY_MODEL, "messages": [{"role": "user", "content": "hi"}], "raw": True}, 422, None),
        ({"model": TINY_MODEL}, 422, None),
        ({"model": TINY_MODEL, "prompt": "hi", "max_new_tokens": 0}, 422, "max_new_tokens"),
        ({"model": TINY_MODEL, "prompt": "hi", "stream": True, "adapter": "nope"}, 404, "adapter"),
    ]
    for body, status, field in cases:
        response = server.request("POST", "/api/generate", body)
        assert response.status == status, (body, response.body)
        if field:
            assert error_of(response)["field"] == field, response.body
    process = server.request("GET", "/api/system/process").json()
    assert not {"torch", "transformers", "peft"} & set(process["modules"]), "refused requests load nothing"


def test_errors_are_json_with_a_message(server: BackendProcess) -> None:
    response = server.request("POST", "/api/jobs", raw_body=b"[1,2", headers={"Content-Type": "application/json"})
    assert response.status == 422
    assert json.loads(response.body)["error"]["code"] == "invalid_request"
