"""``GET /api/system`` (imports torch on the first call), resource check and LoRA presets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from backend.api.deps import ServicesDep
from backend.api.documented import errors, ok
from backend.api.offload import work
from backend.schemas import BundleFilesCheck
from backend.services.system import process_info, system_info

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/system", response_model=None, responses=ok("SystemInfo"))
async def system(request: Request, services: ServicesDep) -> dict[str, Any]:
    return await work(request, system_info, services.layout, str(services.data_dir))


@router.get("/system/resources", response_model=None, responses=ok("ResourcesCheck"))
def resources(services: ServicesDep) -> dict[str, Any]:
    files = services.resources.check_files()
    return {"root": str(services.resources.root), "ok": all(f["ok"] for f in files), "files": files}


@router.get("/system/process", response_model=None, responses=ok("ProcessInfo"))
def process() -> dict[str, Any]:
    """Memory, threads and loaded modules of this server process (not its training workers)."""
    return process_info()


@router.post("/system/bundle-files", response_model=None,
             responses={**ok("BundleFilesReport"), **errors(400, 413, 422)})
async def bundle_files(body: BundleFilesCheck, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Whether bundled files (paths relative to the bundle root, as in the build's data manifest) are
    present and readable from inside the running artifact; used by ``compile verify``. Each file is
    hashed in chunks, regular files only, one request at a time per thread limit."""
    files = await work(request, services.resources.inspect, body.paths)
    return {"root": str(services.resources.bundle_root), "files": files}


@router.get("/presets", response_model=None, responses=ok("Preset", by_name=True))
def presets(services: ServicesDep) -> dict[str, Any]:
    return {name: asdict(preset) for name, preset in services.resources.presets.items()}
