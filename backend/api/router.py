"""Every router, in one place. ``/api/*`` needs the bearer token, checked before any body is read by
:class:`backend.security.RequestGate`; here it is only documented."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.documented import errors
from backend.api.routes import adapters, datasets, health, inference, jobs, lifecycle, models, system


def build_router() -> APIRouter:
    root = APIRouter()
    root.include_router(health.router)
    protected = APIRouter(responses=errors(401))
    for module in (system, models, datasets, jobs, adapters, inference, lifecycle):
        protected.include_router(module.router)
    root.include_router(protected)
    return root
