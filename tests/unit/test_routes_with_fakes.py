"""Routes alone, with the services swapped for fakes through ``dependency_overrides``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.api import deps
from backend.errors import Conflict, InvalidInput, NotFound
from backend.services.job_config import JobConfig

JOB_ID = "job-000000000001"


def job_row(status: str, job_id: str = JOB_ID) -> dict[str, Any]:
    """A complete job as the API answers it (the response model is the contract)."""
    config = JobConfig(model="tiny-llama", dataset="d", adapter_name=job_id, architecture="llama",
                       target_modules=("q_proj",), lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=0.01,
                       max_steps=3, epochs=None, total_steps=3, batch_size=1, max_seq_length=64, seed=1,
                       warmup_steps=0, checkpoint_every=0, device="cpu", dtype="float32", train_on="completions")
    return {"id": job_id, "status": status, "config": config.to_dict(), "created_at": 1.0, "updated_at": 1.0,
            "started_at": None, "finished_at": None, "current_step": 0, "total_steps": 3, "last_loss": None,
            "checkpoint_step": None, "adapter_id": None, "error": None, "attempts": 0, "runtime": None}


class FakeJobs:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["model"] == "missing":
            raise InvalidInput("model 'missing' not found", field="model", allowed=["tiny-llama"])
        self.created.append(request)
        return job_row("queued")

    def list(self) -> list[dict[str, Any]]:
        return [job_row("queued")]

    def get(self, job_id: str) -> dict[str, Any]:
        if job_id != JOB_ID:
            raise NotFound(f"job {job_id!r} not found")
        return job_row("completed")

    def cancel(self, job_id: str) -> dict[str, Any]:
        raise Conflict(f"job {job_id!r} is completed; only queued or running jobs can be cancelled")

    def resume(self, job_id: str) -> dict[str, Any]:
        return job_row("queued", job_id)


@pytest.fixture
def fake_jobs(app: FastAPI) -> FakeJobs:
    fake = FakeJobs()
    app.dependency_overrides[deps.get_jobs] = lambda: fake
    return fake


def test_create_job_returns_202_and_passes_the_parsed_body(client: TestClient, fake_jobs: FakeJobs) -> None:
    response = client.post("/api/jobs", json={"model": "tiny-llama", "dataset": "d", "lora_r": 4})
    assert response.status_code == 202 and response.json()["id"] == JOB_ID
    assert fake_jobs.created[0]["lora_r"] == 4 and fake_jobs.created[0]["target_modules"] is None


def test_service_errors_map_to_status_codes(client: TestClient, fake_jobs: FakeJobs) -> None:
    bad = client.post("/api/jobs", json={"model": "missing", "dataset": "d"})
    assert bad.status_code == 400
    assert bad.json()["error"] == {"code": "invalid_input", "message": "model 'missing' not found",
                                   "field": "model", "allowed": ["tiny-llama"]}
    assert client.get("/api/jobs/job-0000000000ff").status_code == 404
    assert client.get("/api/jobs/nope").status_code == 422
    conflict = client.post(f"/api/jobs/{JOB_ID}/cancel")
    assert conflict.status_code == 409 and "only queued or running" in conflict.json()["error"]["message"]
    assert client.post(f"/api/jobs/{JOB_ID}/resume").status_code == 202


@pytest.mark.parametrize(("body", "field"), [
    ({"dataset": "d"}, "model"),
    ({"model": "m", "dataset": "d", "lora_r": 0}, "lora_r"),
    ({"model": "m", "dataset": "d", "lora_dropout": 1.5}, "lora_dropout"),
    ({"model": "m", "dataset": "d", "learning_rate": -1}, "learning_rate"),
    ({"model": "m", "dataset": "d", "batch_size": "many"}, "batch_size"),
    ({"model": "m", "dataset": "d", "surprise": True}, "surprise"),
])
def test_invalid_bodies_are_422_naming_the_field(
    client: TestClient, fake_jobs: FakeJobs, body: dict, field: str
) -> None:
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field and field in error["message"]
    assert not fake_jobs.created


def test_api_requires_the_token(app: FastAPI, fake_jobs: FakeJobs) -> None:
    with TestClient(app, base_url="http://127.0.0.1") as anonymous:
        response = anonymous.get("/api/jobs")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert anonymous.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anonymous.get("/health").status_code == 200


def test_settling_warms_a_request_and_every_router(app: FastAPI, client: TestClient) -> None:
    """What the server does 0.3 s after its ready line, before releasing startup memory."""
    import asyncio

    from backend.app import warm_request, warm_routes

    assert asyncio.run(warm_request(app)) == 200
    assert asyncio.run(warm_request(app, "/nope")) == 404
    built = warm_routes(app)
    assert built >= 1  # the protected /api router and those inside it
    assert warm_routes(app) == built  # cached by FastAPI: a second pass builds nothing new
    assert client.get("/health").status_code == 200
