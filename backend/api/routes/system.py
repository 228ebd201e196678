"""``GET /api/system`` (imports torch on the first call), resource check and LoRA presets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from backend.api.deps import ServicesDep
from backend.services.system import system_info

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/system")
async def system(services: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(system_info, services.layout, str(services.data_dir))


@router.get("/system/resources")
def resources(services: ServicesDep) -> dict[str, Any]:
    files = services.resources.check_files()
    return {"root": str(services.resources.root), "ok": all(f["ok"] for f in files), "files": files}


@router.get("/presets")
def presets(services: ServicesDep) -> dict[str, Any]:
    return {name: asdict(preset) for name, preset in services.resources.presets.items()}
