"""Base models: list, register a local folder, inspect, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, status

from backend.api.deps import JobsDep, ModelsDep
from backend.api.documented import errors, links, ok
from backend.schemas import ModelRegister

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=None, responses=ok("Model", many=True))
def list_models(models: ModelsDep) -> list[dict[str, Any]]:
    return models.list()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=None, responses={
    **ok("Model", status=201, links=links(get=("get_model_api_models__model_id__get", "model_id"),
                                          delete=("delete_model_api_models__model_id__delete", "model_id"))),
    **errors(400, 409, 422, 507),
})
def register_model(body: ModelRegister, models: ModelsDep) -> dict[str, Any]:
    return models.register(body.name, Path(body.path))


@router.get("/{model_id}", response_model=None, responses={**ok("Model"), **errors(404)})
def get_model(model_id: str, models: ModelsDep) -> dict[str, Any]:
    return models.get(model_id)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409, 507))
def delete_model(model_id: str, models: ModelsDep, jobs: JobsDep) -> None:
    models.delete(model_id, jobs.active_jobs_using(model=model_id))
