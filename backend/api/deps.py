"""Dependencies the routes ask for; tests swap any of them with ``app.dependency_overrides``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from backend.services.adapters import AdapterStore
from backend.services.container import Services
from backend.services.datasets import DatasetStore
from backend.services.inference import InferenceService
from backend.services.jobs import JobManager
from backend.services.lifecycle import Lifecycle
from backend.services.models import ModelRegistry


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_models(request: Request) -> ModelRegistry:
    return get_services(request).models


def get_datasets(request: Request) -> DatasetStore:
    return get_services(request).datasets


def get_jobs(request: Request) -> JobManager:
    return get_services(request).jobs


def get_adapters(request: Request) -> AdapterStore:
    return get_services(request).adapters


def get_inference(request: Request) -> InferenceService:
    return get_services(request).inference


def get_lifecycle(request: Request) -> Lifecycle:
    return get_services(request).lifecycle


ServicesDep = Annotated[Services, Depends(get_services)]
ModelsDep = Annotated[ModelRegistry, Depends(get_models)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
AdaptersDep = Annotated[AdapterStore, Depends(get_adapters)]
InferenceDep = Annotated[InferenceService, Depends(get_inference)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
