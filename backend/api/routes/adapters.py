"""Adapters: list, inspect, delete, merge into a new model (``merge_and_unload``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from fastapi import Path as PathParam

from backend.api.deps import AdaptersDep, InferenceDep, ServicesDep
from backend.api.documented import errors, ok
from backend.api.offload import read, work
from backend.api.routes.inference import CLIENT_CLOSED, disconnected
from backend.schemas import AdapterMerge, Name
from backend.services.admission import ClientGone

router = APIRouter(prefix="/api/adapters", tags=["adapters"])
AdapterPath = Annotated[Name, PathParam(description="an adapter id")]


@router.get("", response_model=None, responses=ok("Adapter", many=True))
async def list_adapters(request: Request, adapters: AdaptersDep) -> list[dict[str, Any]]:
    return await read(request, adapters.list)


@router.get("/{adapter_id}", response_model=None, responses={**ok("Adapter"), **errors(404, 422)})
async def get_adapter(adapter_id: AdapterPath, request: Request, adapters: AdaptersDep) -> dict[str, Any]:
    return await read(request, adapters.get, adapter_id)


@router.delete("/{adapter_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 422, 507))
async def delete_adapter(adapter_id: AdapterPath, request: Request, adapters: AdaptersDep) -> None:
    await read(request, adapters.delete, adapter_id)


@router.post("/{adapter_id}/merge", status_code=status.HTTP_201_CREATED, response_model=None,
             responses={**ok("Model", status=201), **errors(400, 404, 409, 413, 422, 429, 507)})
async def merge_adapter(adapter_id: AdapterPath, body: AdapterMerge, request: Request, inference: InferenceDep,
                        services: ServicesDep) -> Any:
    """Waits for the model like a generation does (the same queue), then merges in a thread."""
    def check() -> None:
        services.adapters.get(adapter_id)
        services.models.check_new_id(body.name)

    await read(request, check)
    try:
        ticket = await services.admission.enter(gone=lambda: disconnected(request))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    try:
        return await work(request, inference.merge, adapter_id, body.name)
    finally:
        ticket.release()
