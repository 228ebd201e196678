"""``GET /health``: no auth, no service, no ML import, no thread; what the service manager polls.

It runs on the event loop itself, so it answers whatever the threads are doing."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request

from backend import __version__
from backend.api.documented import ok

router = APIRouter(tags=["health"])


@router.get("/health", response_model=None, responses=ok("Health"))
async def health(request: Request) -> dict[str, object]:
    return {"status": "ok", "version": __version__, "mode": request.app.state.layout.mode.name, "pid": os.getpid()}
