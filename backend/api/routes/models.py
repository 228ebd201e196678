"""Base models: list, register a local folder (probed in a child process), inspect, remove."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi import Path as PathParam

from backend.api.deps import JobsDep, ModelsDep
from backend.api.documented import errors, links, ok
from backend.api.offload import read, work
from backend.schemas import ModelRegister, Name

router = APIRouter(prefix="/api/models", tags=["models"])
ModelPath = Annotated[Name, PathParam(description="a model id")]


@router.get("", response_model=None, responses=ok("Model", many=True))
async def list_models(request: Request, models: ModelsDep) -> list[dict[str, Any]]:
    return await read(request, lambda: [models.describe(model) for model in models.list()])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=None, responses={
    **ok("Model", status=201, links=links(get=("get_model_api_models__model_id__get", "model_id"),
                                          delete=("delete_model_api_models__model_id__delete", "model_id"))),
    **errors(400, 404, 409, 413, 422, 507),
})
async def register_model(body: ModelRegister, request: Request, models: ModelsDep) -> dict[str, Any]:
    """Reads the folder's config, weights' headers and tokenizer files, then asks a model probe (a child
    process: transformers and peft, ``trust_remote_code`` off) whether it can be trained; no code from the
    folder runs. Refused with the reason when it cannot be."""
    return await work(request, models.register, body.name, body.path)


@router.get("/{model_id}", response_model=None, responses={**ok("Model"), **errors(404, 422)})
async def get_model(model_id: ModelPath, request: Request, models: ModelsDep) -> dict[str, Any]:
    return await read(request, lambda: models.describe(models.get(model_id)))


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404, 409, 422, 507))
async def delete_model(model_id: ModelPath, request: Request, models: ModelsDep, jobs: JobsDep) -> None:
    await read(request, lambda: models.delete(model_id, jobs.active_jobs_using(model=model_id)))
