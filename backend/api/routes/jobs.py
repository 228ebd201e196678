"""Training jobs: create (202), list, get, stream progress (SSE, resumable), cancel, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse

from backend.api.deps import JobsDep, ServicesDep
from backend.api.documented import errors, links, ok
from backend.schemas import JobCreate
from backend.services.jobs import TERMINAL

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

HEARTBEAT_SECONDS = 15.0
WAKE_TIMEOUT_SECONDS = 1.0


MAX_EVENT_ID = 2**63 - 1  # the largest SQLite integer


def parse_last_event_id(value: str | None) -> int:
    """The event id a reconnecting client saw last. Absent or not an id (``junk``, ``²``): 0, so the
    stream replays from the start, as for a first connection. An id beyond any that can exist: the
    largest, so nothing is replayed."""
    text = (value or "").strip()
    if not text or not text.isascii() or not text.isdigit():
        return 0
    return MAX_EVENT_ID if len(text) > 18 else int(text)


def sse_message(seq: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=None, responses={
    **ok("Job", status=202, links=links(get=("get_job_api_jobs__job_id__get", "job_id"),
                                        events=("job_events_api_jobs__job_id__events_get", "job_id"),
                                        cancel=("cancel_job_api_jobs__job_id__cancel_post", "job_id"),
                                        resume=("resume_job_api_jobs__job_id__resume_post", "job_id"))),
    **errors(400, 409, 422, 507),
})
def create_job(body: JobCreate, jobs: JobsDep) -> dict[str, Any]:
    return jobs.create(body.model_dump())


@router.get("", response_model=None, responses=ok("Job", many=True))
def list_jobs(jobs: JobsDep) -> list[dict[str, Any]]:
    return jobs.list()


@router.get("/{job_id}", response_model=None, responses={**ok("Job"), **errors(404)})
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.get(job_id)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=None,
             responses={**ok("Job", status=202), **errors(404, 409, 507)})
def cancel_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.cancel(job_id)


@router.post("/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=None,
             responses={**ok("Job", status=202), **errors(404, 409, 507)})
def resume_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return jobs.resume(job_id)


@router.get("/{job_id}/events", response_class=StreamingResponse, responses={
    200: {"description": "Server-sent events, ended once the job is final", "content": {"text/event-stream": {}}},
    **errors(404),
})
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
    after = parse_last_event_id(last_event_id)
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
