"""Datasets: upload JSONL as the raw request body (streamed, size-limited), list, inspect, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi import Path as PathParam

from backend.api.deps import DatasetsDep, JobsDep
from backend.api.documented import errors, links, ok
from backend.api.offload import read
from backend.schemas import Name

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
DatasetPath = Annotated[Name, PathParam(description="a dataset id")]


@router.get("", response_model=None, responses=ok("Dataset", many=True))
async def list_datasets(request: Request, datasets: DatasetsDep) -> list[dict[str, Any]]:
    return await read(request, datasets.list)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=None, responses={
    **ok("Dataset", status=201, links=links(get=("get_dataset_api_datasets__dataset_id__get", "dataset_id"),
                                            delete=("delete_dataset_api_datasets__dataset_id__delete", "dataset_id"))),
    **errors(400, 409, 413, 422, 507),
})
async def upload_dataset(
    request: Request, datasets: DatasetsDep, name: Annotated[Name, Query(description="id for the dataset")]
) -> dict[str, Any]:
    """Body: JSONL, one record per line, in any of these shapes: ``{"text"}``, ``{"prompt","completion"}``,
    ``{"instruction","output","input"?}``, ``{"messages":[{"role","content"}]}`` (OpenAI chat) or
    ``{"conversations":[{"from","value"}]}`` (ShareGPT). The name is checked before the body is read."""
    await read(request, datasets.check_new_name, name)
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isdigit() else None
    return await datasets.upload(name, request.stream(), declared, run_in_thread=lambda *args: read(request, *args))


@router.get("/{dataset_id}", response_model=None, responses={**ok("Dataset"), **errors(404, 422)})
async def get_dataset(dataset_id: DatasetPath, request: Request, datasets: DatasetsDep) -> dict[str, Any]:
    return await read(request, datasets.get, dataset_id)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409, 422, 507))
async def delete_dataset(dataset_id: DatasetPath, request: Request, datasets: DatasetsDep, jobs: JobsDep) -> None:
    await read(request, lambda: datasets.delete(dataset_id, jobs.active_jobs_using(dataset=dataset_id)))
