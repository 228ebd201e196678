"""The typed answers of every route, for the OpenAPI document only: :func:`backend.app` adds their
schemas when the document is generated, and the routes refer to them by name
(:mod:`backend.api.documented`). Nothing imports this module on the startup path."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "completed", "cancelled", "failed", "interrupted"]


class ErrorDetail(BaseModel):
    code: str = Field(..., description="stable machine-readable code, e.g. invalid_input, not_found, conflict")
    message: str = Field(..., description="what was wrong and what to do; shown to the user as is")
    field: str | None = Field(None, description="the request field at fault")
    allowed: list[str] | None = Field(None, description="the values that would have been accepted")
    details: list[dict[str, Any]] | None = Field(None, description="per-field problems (422)")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    mode: str = Field(..., description="source, nuitka-standalone, nuitka-onefile, pyinstaller-onedir or "
                                       "pyinstaller-onefile")
    pid: int


class Model(BaseModel):
    id: str
    path: str
    architecture: str
    source: Literal["bundled", "local", "merged"]
    created_at: float | None


class Dataset(BaseModel):
    id: str
    source: Literal["bundled", "uploaded"]
    records: int
    bytes: int
    created_at: float | None


class Adapter(BaseModel):
    id: str
    job_id: str | None
    base_model: str
    path: str
    created_at: float
    final_loss: float | None


class JobConfig(BaseModel):
    model: str
    dataset: str
    adapter_name: str
    architecture: str
    target_modules: list[str]
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    learning_rate: float
    max_steps: int | None
    epochs: float | None
    total_steps: int
    batch_size: int
    max_seq_length: int
    seed: int
    warmup_steps: int
    checkpoint_every: int


class Job(BaseModel):
    id: str
    status: JobStatus
    config: JobConfig
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    current_step: int
    total_steps: int
    last_loss: float | None
    checkpoint_step: int | None
    adapter_id: str | None
    error: str | None
    attempts: int


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    model: str
    adapter: str | None


class Preset(BaseModel):
    name: str
    model_types: list[str]
    available_target_modules: list[str]
    default_target_modules: list[str]
    r: int
    alpha: int
    dropout: float


class MlStack(BaseModel):
    torch: str
    transformers: str
    peft: str
    cuda_available: bool
    cuda_devices: int
    mps_available: bool
    torch_threads: int
    loaded_from: str
    sidecar_paths: list[str]


class SystemInfo(BaseModel):
    version: str
    mode: str
    python: str
    platform: str
    machine: str
    cpu_count: int | None
    cpu_physical: int | None
    memory_total_bytes: int
    memory_available_bytes: int
    data_dir: str
    resources_dir: str
    ml: MlStack


class ResourceFile(BaseModel):
    path: str
    ok: bool
    bytes: int | None = None
    error: str | None = None


class ResourcesCheck(BaseModel):
    root: str
    ok: bool
    files: list[ResourceFile]


class BundleFile(BaseModel):
    path: str
    ok: bool
    bytes: int | None = None
    sha256: str | None = None
    error: str | None = None


class BundleFilesReport(BaseModel):
    root: str
    files: list[BundleFile]


class StartupRelease(BaseModel):
    mappings: int
    file_kib: int
    rss_before_kib: int
    rss_after_kib: int
    seconds: float


class SidecarState(BaseModel):
    on_path: list[str] = Field(..., description="sidecar folders on sys.path (a Nuitka build's ML packages)")
    modules_loaded: int = Field(..., description="modules loaded from them so far (0 until the first ML use)")


class ProcessInfo(BaseModel):
    pid: int
    threads: int
    memory_bytes: dict[str, int]
    startup_release: StartupRelease | None
    python_allocated_blocks: int
    modules: list[str]
    sidecar: SidecarState


class ShutdownAccepted(BaseModel):
    status: Literal["shutting down"]


def document_models() -> list[type[BaseModel]]:
    """Every model the routes refer to by name."""
    return [ErrorBody, Health, Model, Dataset, Adapter, Job, Generation, Preset, SystemInfo, ResourcesCheck,
            BundleFilesReport, ProcessInfo, ShutdownAccepted]
