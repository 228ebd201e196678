"""Adapters: list, inspect, delete, merge into a new model (``merge_and_unload``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from backend.api.deps import AdaptersDep, InferenceDep
from backend.api.documented import errors, ok
from backend.schemas import AdapterMerge

router = APIRouter(prefix="/api/adapters", tags=["adapters"])


@router.get("", response_model=None, responses=ok("Adapter", many=True))
def list_adapters(adapters: AdaptersDep) -> list[dict[str, Any]]:
    return adapters.list()


@router.get("/{adapter_id}", response_model=None, responses={**ok("Adapter"), **errors(404)})
def get_adapter(adapter_id: str, adapters: AdaptersDep) -> dict[str, Any]:
    return adapters.get(adapter_id)


@router.delete("/{adapter_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 507))
def delete_adapter(adapter_id: str, adapters: AdaptersDep) -> None:
    adapters.delete(adapter_id)


@router.post("/{adapter_id}/merge", status_code=status.HTTP_201_CREATED, response_model=None,
             responses={**ok("Model", status=201), **errors(400, 404, 409, 422, 507)})
async def merge_adapter(adapter_id: str, body: AdapterMerge, inference: InferenceDep) -> dict[str, Any]:
    return await run_in_threadpool(inference.merge, adapter_id, body.name)
