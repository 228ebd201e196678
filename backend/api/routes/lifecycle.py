"""``POST /api/shutdown``: a graceful stop, the same path as SIGTERM."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, status

from backend.api.deps import LifecycleDep
from backend.api.documented import ok

router = APIRouter(prefix="/api", tags=["lifecycle"])


@router.post("/shutdown", status_code=status.HTTP_202_ACCEPTED, response_model=None,
             responses=ok("ShutdownAccepted", status=202))
def shutdown(lifecycle: LifecycleDep, background: BackgroundTasks) -> dict[str, str]:
    # After the response is sent, so the caller gets its 202 before the server stops listening.
    background.add_task(lifecycle.request_shutdown, "POST /api/shutdown")
    return {"status": "shutting down"}
