"""Small helpers the behaviour tests share: upload, create a job, wait for its state, find its worker."""

from __future__ import annotations

from typing import Any

from backend.runtime_paths import current_layout
from backend.services.resources import BundledResources
from backend_client.manager import BackendProcess
from tests.support import SAMPLE_DATASET, TINY_MODEL, wait_for


def upload_sample(process: BackendProcess, name: str, lines: int) -> dict[str, Any]:
    sample = BundledResources(current_layout().resources).sample_dataset.read_bytes()
    body = b"".join(sample.splitlines(keepends=True)[:lines])
    response = process.request("POST", f"/api/datasets?name={name}", raw_body=body,
                               headers={"Content-Type": "application/x-ndjson"})
    assert response.status == 201, response.body
    return response.json()


def create_job(process: BackendProcess, **fields: object) -> dict[str, Any]:
    body = {"model": TINY_MODEL, "dataset": SAMPLE_DATASET, **fields}
    response = process.request("POST", "/api/jobs", body)
    assert response.status == 202, response.body
    return response.json()


def job(process: BackendProcess, job_id: str) -> dict[str, Any]:
    return process.request("GET", f"/api/jobs/{job_id}").json()


def wait_status(process: BackendProcess, job_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
    return wait_for(lambda: (j := job(process, job_id))["status"] in statuses and j, timeout,
                    what=f"job {job_id} to become {statuses}")


def wait_steps(process: BackendProcess, job_id: str, steps: int, timeout: float = 180.0) -> dict[str, Any]:
    return wait_for(lambda: (j := job(process, job_id))["current_step"] >= steps and j, timeout,
                    what=f"job {job_id} to reach step {steps}")


def worker_pid(process: BackendProcess, job_id: str, attempt: int = 1) -> int:
    """The worker's pid, as the job's ``running`` state event reports it (``attempt``: the n-th run)."""
    seen = 0
    events = process.iter_events(f"/api/jobs/{job_id}/events", timeout=60)
    try:
        for event in events:
            if event.get("event") == "state" and event["data"].get("status") == "running":
                seen += 1
                if seen == attempt:
                    return int(event["data"]["worker_pid"])
    finally:
        events.close()  # type: ignore[attr-defined]
    raise AssertionError(f"job {job_id} has no running state number {attempt}")
