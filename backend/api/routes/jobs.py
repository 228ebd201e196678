"""Training jobs: create (202), list, get, stream progress (SSE, resumable), cancel, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse

from backend.api.deps import JobsDep, ServicesDep
from backend.schemas import JobCreate
from backend.services.jobs import TERMINAL

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

HEARTBEAT_SECONDS = 15.0
WAKE_TIMEOUT_SECONDS = 1.0


def sse_message(seq: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def create_job(body: JobCreate, jobs: JobsDep) -> dict[str, Any]:
    return jobs.create(body.model_dump())


@router.get("")
def list_jobs(jobs: JobsDep) -> list[dict[str, Any]]:
    return jobs.list()


@router.get("/{job_id}")
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.get(job_id)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
def cancel_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.cancel(job_id)


@router.post("/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED)
def resume_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.resume(job_id)


@router.get("/{job_id}/events")
async def job_events(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    services: ServicesDep,
    last_event_id: str | None = Header(None, description="resume after this event id"),
) -> StreamingResponse:
    """Server-sent events: ``state``, ``status``, ``step``, ``checkpoint``; each with an ``id``.

    The stream ends after the job reaches a final state and every event has been sent.
    """
    jobs.get(job_id)  # 404 before the stream starts
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else 0
    notifier, lifecycle = services.notifier, services.lifecycle

    async def stream() -> AsyncIterator[str]:
        nonlocal after
        wake = notifier.subscribe(job_id)
        idle = 0.0
        try:
            yield "retry: 1000\n\n"
            while True:
                wake.clear()
                status_now = jobs.get(job_id)["status"]
                events = jobs.events_after(job_id, after)
                for event in events:
                    after = event["seq"]
                    yield sse_message(event["seq"], event["type"], event["data"])
                if events:
                    idle = 0.0
                    continue  # there may be more than one page
                if status_now in TERMINAL or lifecycle.shutting_down.is_set():
                    return
                try:
                    await asyncio.wait_for(wake.wait(), WAKE_TIMEOUT_SECONDS)
                except asyncio.TimeoutError:
                    idle += WAKE_TIMEOUT_SECONDS
                    if idle >= HEARTBEAT_SECONDS:
                        idle = 0.0
                        yield ": keep-alive\n\n"
        finally:
            notifier.unsubscribe(job_id, wake)

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
