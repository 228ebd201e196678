"""Base models: list, register a local folder, inspect, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, status

from backend.api.deps import JobsDep, ModelsDep
from backend.schemas import ModelRegister

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("")
def list_models(models: ModelsDep) -> list[dict[str, Any]]:
    return models.list()


@router.post("", status_code=status.HTTP_201_CREATED)
def register_model(body: ModelRegister, models: ModelsDep) -> dict[str, Any]:
    return models.register(body.name, Path(body.path))


@router.get("/{model_id}")
def get_model(model_id: str, models: ModelsDep) -> dict[str, Any]:
    return models.get(model_id)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: str, models: ModelsDep, jobs: JobsDep) -> None:
    models.delete(model_id, jobs.active_jobs_using(model=model_id))
