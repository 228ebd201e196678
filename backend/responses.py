"""The typed answers of every route, for the OpenAPI document only: :func:`backend.app` adds their
schemas when the document is generated, and the routes refer to them by name
(:mod:`backend.api.documented`). Nothing imports this module on the startup path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from backend.services.job_config import JobConfig as JobConfigDeclaration
from backend.services.job_config import field_names
from backend.services.job_states import JobStatus


class ErrorDetail(BaseModel):
    code: str = Field(..., description="stable machine-readable code, e.g. invalid_input, not_found, conflict")
    message: str = Field(..., description="what was wrong and what to do; shown to the user as is")
    field: str | None = Field(None, description="the request field at fault")
    allowed: list[str] | None = Field(None, description="values that would have been accepted (at most 10)")
    allowed_total: int | None = Field(None, description="how many values would have been accepted, when more than "
                                                         "'allowed' lists")
    allowed_listed_at: str | None = Field(None, description="the route that lists them all")
    details: list[dict[str, Any]] | None = Field(None, description="per-field problems (422)")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    mode: str = Field(..., description="source, nuitka-standalone, nuitka-onefile, pyinstaller-onedir or "
                                       "pyinstaller-onefile")
    pid: int


class ModelDetails(BaseModel):
    model_class: str | None
    parameters: int | None
    weights_dtype: str | None
    weight_format: str | None
    tokenizer_class: str | None
    chat_template: bool | None = Field(None, description="whether its tokenizer has a chat template (else the "
                                                         "documented default renders conversations)")
    linear_modules: list[str] | None = Field(None, description="what target_modules may name")
    default_target_modules: list[str] | str | None = Field(None, description="peft's default for its model type, "
                                                                              "or all-linear")


class Model(BaseModel):
    id: str
    path: str
    architecture: str = Field(..., description="the model type, from its config.json")
    source: Literal["bundled", "local", "merged"]
    created_at: float | None
    details: ModelDetails | None = Field(None, description="what the model probe found (null: not probed yet)")


class Dataset(BaseModel):
    id: str
    source: Literal["bundled", "uploaded"]
    records: int
    bytes: int
    created_at: float | None
    formats: list[Literal["text", "prompt_completion", "alpaca", "messages", "sharegpt"]] | None = Field(
        None, description="the record shapes it holds (null: uploaded by an earlier version)")


class Adapter(BaseModel):
    id: str
    job_id: str | None
    base_model: str
    path: str
    created_at: float
    final_loss: float | None


def _job_config_model() -> type[BaseModel]:
    """The answer's ``config``: every field of the one declaration
    (:class:`backend.services.job_config.JobConfig`), with its type."""
    from typing import get_type_hints

    hints = get_type_hints(JobConfigDeclaration)
    fields: dict[str, Any] = {}
    for name in field_names():
        kind = hints[name]
        if name == "target_modules":
            kind = Union[list[str], None]  # noqa: UP007  # a JSON array
        fields[name] = (kind, ...)
    return create_model("JobConfig", **fields)


if TYPE_CHECKING:  # to a type checker, a model like any other; at run time, made from the declaration
    class JobConfig(BaseModel):
        pass
else:
    JobConfig = _job_config_model()


class JobRuntime(BaseModel):
    """What the worker resolved when the job started."""

    model_config = {"extra": "allow"}
    device: str | None = None
    dtype: str | None = None
    device_name: str | None = None
    device_reason: str | None = Field(None, description="why that device: above all why not a GPU")
    target_modules: list[str] | str | None = None
    trainable_parameters: int | None = None
    examples: int | None = None
    examples_without_trained_tokens: int | None = None
    max_seq_length: int | None = None
    chat_template: Literal["model", "default"] | None = None
    steps_per_second: float | None = Field(None, description="once completed: the steps of this run per second")
    peak_gpu_memory_bytes: int | None = Field(None, description="once completed on CUDA: the peak torch allocated")


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
    runtime: JobRuntime | None = Field(None, description="device, dtype and targets, once the job has started")


class Generation(BaseModel):
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    model: str
    adapter: str | None
    device: str
    dtype: str
    stopped: Literal["done", "cancelled"]


class Preset(BaseModel):
    name: str
    model_types: list[str]
    target_modules: list[str] | None = Field(..., description="null: peft's default for the model type")
    r: int
    alpha: int
    dropout: float


class MlStack(BaseModel):
    torch: str
    transformers: str
    peft: str
    cuda_available: bool
    cuda_devices: int
    cuda_name: str | None
    torch_cuda: str | None = Field(..., description="the CUDA version this torch was built for (null: CPU build)")
    mps_available: bool
    device: str = Field(..., description="where generation and 'auto' jobs run: cuda, mps or cpu")
    device_reason: str = Field(..., description="why that device: above all why not a GPU (a CPU build of "
                                                "torch, or no CUDA device)")
    dtype: str = Field(..., description="the dtype 'auto' picks on that device")
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
