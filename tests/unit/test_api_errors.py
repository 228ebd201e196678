"""Bad input against the real services (no training started): 4xx naming the field, never 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_unknown_target_module_lists_valid_ones(client: TestClient) -> None:
    response = client.post("/api/jobs", json={"model": "tiny-llama", "dataset": "sample-instructions",
                                              "target_modules": ["q_proj", "c_attn"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "target_modules" and "c_attn" in error["message"]
    assert error["allowed"] == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "nope", "dataset": "sample-instructions"}, "model"),
    ({"model": "tiny-llama", "dataset": "nope"}, "dataset"),
    ({"model": "tiny-llama", "dataset": "sample-instructions", "adapter_name": "../x"}, "adapter_name"),
    ({"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 3, "epochs": 1}, "max_steps"),
])
def test_bad_references_are_400(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field
    assert client.get("/api/jobs").json() == []


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in ("/api/jobs/job-x", "/api/jobs/job-x/events", "/api/adapters/x", "/api/models/x",
                 "/api/datasets/x"):
        assert client.get(path).status_code == 404, path
    assert client.post("/api/jobs/job-x/cancel").status_code == 404
    assert client.post("/api/adapters/x/merge", json={"name": "m"}).status_code == 404


def test_register_model_validation(client: TestClient, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    response = client.post("/api/models", json={"name": "m1", "path": str(empty)})
    assert response.status_code == 400 and "config.json" in response.json()["error"]["message"]
    (empty / "config.json").write_text('{"model_type": "bert"}')
    unsupported = client.post("/api/models", json={"name": "m1", "path": str(empty)})
    assert unsupported.status_code == 400 and "llama" in unsupported.json()["error"]["allowed"]
    assert client.post("/api/models", json={"name": "m1", "path": str(tmp_path / "missing")}).status_code == 400
    (empty / "config.json").write_text('{"model_type": "llama"}')
    assert client.post("/api/models", json={"name": "m1", "path": str(empty)}).status_code == 201
    assert client.post("/api/models", json={"name": "m1", "path": str(empty)}).status_code == 409
    assert client.delete("/api/models/tiny-llama").status_code == 409
    assert client.delete("/api/models/m1").status_code == 204
    assert empty.is_dir(), "a registered folder belongs to the user and is never deleted"


def test_generate_rejects_bad_references_before_loading(client: TestClient) -> None:
    response = client.post("/api/generate", json={"model": "tiny-llama", "adapter": "nope", "prompt": "hi"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "adapter"
    assert client.post("/api/generate", json={"model": "tiny-llama", "prompt": ""}).status_code == 422


def test_resources_and_presets(client: TestClient) -> None:
    resources = client.get("/api/system/resources").json()
    assert resources["ok"] and all(f["bytes"] > 0 for f in resources["files"])
    assert "llama" in client.get("/api/presets").json()


scalars = (
    st.none() | st.booleans() | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
job_fields = ["model", "dataset", "adapter_name", "target_modules", "lora_r", "lora_alpha", "lora_dropout",
              "learning_rate", "max_steps", "epochs", "batch_size", "max_seq_length", "seed"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(job_fields), json_values, max_size=6))
def test_arbitrary_job_bodies_never_500(client: TestClient, body: dict) -> None:
    body.pop("max_steps", None)  # keep any accepted job small...
    body["max_steps"] = 1
    body.setdefault("model", "nope")  # ...and never actually train: every body here has a bad reference
    if body.get("model") == "tiny-llama":
        body["model"] = "nope"
    response = client.post("/api/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text


def test_bundle_files_check_is_confined_to_the_bundle(client: TestClient) -> None:
    response = client.post("/api/system/bundle-files", json={"paths": [
        "backend/resources/defaults.json", "backend/resources/missing.json", "../../etc/passwd", "/etc/passwd",
    ]})
    assert response.status_code == 200
    files = {entry["path"]: entry for entry in response.json()["files"]}
    assert files["backend/resources/defaults.json"]["ok"] and len(files["backend/resources/defaults.json"]["sha256"]) == 64
    assert not files["backend/resources/missing.json"]["ok"]
    assert files["../../etc/passwd"]["error"] == "outside the bundle"
    assert files["/etc/passwd"]["error"] == "outside the bundle"
