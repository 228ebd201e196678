"""Training jobs: create (202), list, get, stream progress (SSE, resumable), cancel, resume.

Every store read runs in a thread behind the read limiter (:mod:`backend.api.offload`), never on the
event loop: a slow disk or a busy database lock then delays only the reads, never ``/health``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from backend.api.deps import JobsDep, ServicesDep
from backend.api.documented import errors, links, ok
from backend.api.offload import read, work
from backend.schemas import JobCreate, JobId
from backend.services.job_states import TERMINAL

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

HEARTBEAT_SECONDS = 15.0
WAKE_TIMEOUT_SECONDS = 1.0
MAX_EVENT_ID = 2**63 - 1  # the largest SQLite integer
JobPath = Annotated[JobId, PathParam(description="a job id, as POST /api/jobs answers")]


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
    **errors(400, 404, 409, 413, 422, 507),
})
async def create_job(body: JobCreate, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await work(request, jobs.create, body.model_dump())


@router.get("", response_model=None, responses=ok("Job", many=True))
async def list_jobs(request: Request, jobs: JobsDep) -> list[dict[str, Any]]:
    return await read(request, jobs.list)


@router.get("/{job_id}", response_model=None, responses={**ok("Job"), **errors(404, 422)})
async def get_job(job_id: JobPath, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await read(request, jobs.get, job_id)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=None,
             responses={**ok("Job", status=202), **errors(404, 409, 422, 507)})
async def cancel_job(job_id: JobPath, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await read(request, jobs.cancel, job_id)


@router.post("/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=None,
             responses={**ok("Job", status=202), **errors(404, 409, 422, 507)})
async def resume_job(job_id: JobPath, request: Request, jobs: JobsDep) -> dict[str, Any]:
    return await read(request, jobs.resume, job_id)


@router.get("/{job_id}/events", response_class=StreamingResponse, responses={
    200: {"description": "Server-sent events, ended once the job is final", "content": {"text/event-stream": {}}},
    **errors(404, 422),
})
async def job_events(
    job_id: JobPath,
    request: Request,
    jobs: JobsDep,
    services: ServicesDep,
    last_event_id: str | None = Header(None, description="resume after this event id"),
) -> StreamingResponse:
    """Server-sent events: ``state``, ``status``, ``runtime``, ``step``, ``checkpoint``; each with an ``id``.

    The stream ends after the job reaches a final state and every event has been sent.
    """
    await read(request, jobs.get, job_id)  # 404 before the stream starts
    after = parse_last_event_id(last_event_id)
    notifier, lifecycle = services.notifier, services.lifecycle

    def snapshot(after_seq: int) -> tuple[str, list[dict[str, Any]]]:
        return jobs.get(job_id)["status"], jobs.events_after(job_id, after_seq)

    async def stream() -> AsyncIterator[str]:
        nonlocal after
        wake = notifier.subscribe(job_id)
        idle = 0.0
        try:
            yield "retry: 1000\n\n"
            while True:
                wake.clear()
                status_now, events = await read(request, snapshot, after)
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
