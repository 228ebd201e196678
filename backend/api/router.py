"""Every router, in one place; ``/api/*`` routes require the bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api.documented import errors
from backend.api.routes import adapters, datasets, health, inference, jobs, lifecycle, models, system
from backend.security import require_token


def build_router() -> APIRouter:
    root = APIRouter()
    root.include_router(health.router)
    protected = APIRouter(dependencies=[Depends(require_token)], responses=errors(401))
    for module in (system, models, datasets, jobs, adapters, inference, lifecycle):
        protected.include_router(module.router)
    root.include_router(protected)
    return root
