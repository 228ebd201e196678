"""Datasets: upload JSONL as the raw request body (streamed, size-limited), list, inspect, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, status

from backend.api.deps import DatasetsDep, JobsDep
from backend.api.documented import errors, links, ok

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.get("", response_model=None, responses=ok("Dataset", many=True))
def list_datasets(datasets: DatasetsDep) -> list[dict[str, Any]]:
    return datasets.list()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=None, responses={
    **ok("Dataset", status=201, links=links(get=("get_dataset_api_datasets__dataset_id__get", "dataset_id"),
                                            delete=("delete_dataset_api_datasets__dataset_id__delete", "dataset_id"))),
    **errors(400, 409, 413, 422, 507),
})
async def upload_dataset(
    request: Request, datasets: DatasetsDep, name: str = Query(..., description="id for the dataset")
) -> dict[str, Any]:
    """Body: JSONL, one record per line (``{"text"}`` or ``{"instruction","output","input"?}``)."""
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isdigit() else None
    return await datasets.upload(name, request.stream(), declared)


@router.get("/{dataset_id}", response_model=None, responses={**ok("Dataset"), **errors(404)})
def get_dataset(dataset_id: str, datasets: DatasetsDep) -> dict[str, Any]:
    return datasets.get(dataset_id)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409, 507))
def delete_dataset(dataset_id: str, datasets: DatasetsDep, jobs: JobsDep) -> None:
    datasets.delete(dataset_id, jobs.active_jobs_using(dataset=dataset_id))
