"""Request bodies and parameters: every rule the server enforces, stated in the OpenAPI document too.

A bad value is a 422 naming the field, before any work. Names and ids carry the pattern and lengths of
:mod:`backend.names` (the same constants the validators use); a job's body is derived from the one
:class:`~backend.services.job_config.JobConfig` declaration (:func:`request_model`).

Patterns are checked in Python (:func:`backend.names.is_valid_name`) and written into the document
as ``pattern``: pydantic's default regex engine has no look-ahead, which the Windows device-name rule
needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from backend.names import (
    JOB_ID_LENGTH,
    JOB_ID_PATTERN,
    NAME_MAX_LENGTH,
    NAME_MIN_LENGTH,
    NAME_PATTERN,
    NAME_RULE,
    is_job_id,
    is_valid_name,
)
from backend.services.job_config import JobConfig, request_fields

MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux; longer is never a real path
MAX_TEXT = 20_000  # characters of a prompt, an input or one message
MAX_MESSAGES = 256
MAX_BUNDLE_PATHS = 2000
# Sampling divides the logits by the temperature: below this, float32 logits overflow to inf and
# sampling fails (schemathesis found 1e-308). 0 means greedy decoding, which is what the limit tends to.
MIN_SAMPLING_TEMPERATURE = 0.01
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _valid_name(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError(f"use {NAME_RULE}")
    return value


def _valid_job_id(value: str) -> str:
    if not is_job_id(value):
        raise ValueError("a job id is 'job-' and 12 lowercase hex digits, as POST /api/jobs answers")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


NAME_SCHEMA = {"pattern": NAME_PATTERN}
Name = Annotated[str, Field(min_length=NAME_MIN_LENGTH, max_length=NAME_MAX_LENGTH, json_schema_extra=NAME_SCHEMA),
                 AfterValidator(_valid_name)]
JobId = Annotated[str, Field(min_length=JOB_ID_LENGTH, max_length=JOB_ID_LENGTH,
                             json_schema_extra={"pattern": JOB_ID_PATTERN}), AfterValidator(_valid_job_id)]
LocalPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_LENGTH,
                                 json_schema_extra={"pattern": NO_NUL_PATTERN}), AfterValidator(_no_nul)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


NAME_FIELDS = ("model", "dataset", "adapter_name")  # JobConfig fields that hold a name


def request_model() -> type[BaseModel]:
    """The job request body: every field of :class:`JobConfig` a request may set, with its limits."""
    definitions: dict[str, Any] = {}
    for name, (annotation, rule) in request_fields().items():
        kind: Any = Name if name in NAME_FIELDS else annotation
        if name == "target_modules":
            kind = list[Annotated[str, Field(**rule.item_limits)]]
        limits = {**rule.limits}
        if rule.required:
            definitions[name] = (kind, Field(..., description=rule.description, **limits))
        else:
            definitions[name] = (Union[kind, None], Field(None, description=rule.description, **limits))  # noqa: UP007
    return create_model(
        "JobCreate", __base__=StrictBody, __doc__="A training job: every field but model and dataset is optional.",
        **definitions)


if TYPE_CHECKING:  # to a type checker, a model like any other; at run time, made from the declaration
    class JobCreate(StrictBody):
        pass
else:
    JobCreate = request_model()
JobCreate.model_config["json_schema_extra"] = {"examples": [
    {"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 3, "checkpoint_every": 0},
]}
JobCreate.model_rebuild(force=True)
assert set(JobCreate.model_fields) == set(request_fields()) and set(request_fields()) <= {
    f for f in JobConfig.__dataclass_fields__}


class ModelRegister(StrictBody):
    name: Name = Field(..., description="id for the model")
    path: LocalPath = Field(..., description="local folder written by save_pretrained")


class AdapterMerge(StrictBody):
    name: Name = Field(..., description="id of the merged model to create")


class ChatMessage(StrictBody):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(..., max_length=MAX_TEXT)


def _temperature_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update({"anyOf": [{"type": "number", "enum": [0]},
                             {"type": "number", "minimum": MIN_SAMPLING_TEMPERATURE, "maximum": 5.0},
                             {"type": "null"}],
                   "description": f"0: greedy decoding; otherwise sampling, from {MIN_SAMPLING_TEMPERATURE} to 5"})


def _one_of_prompt_or_messages(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": ["prompt"]}, {"required": ["messages"]}]
    schema["dependentRequired"] = {"input": ["prompt"], "raw": ["prompt"]}


class GenerateRequest(StrictBody):
    """Give ``prompt`` or ``messages``, not both. A prompt (with its optional ``input``) is the user's turn,
    rendered with the model's chat template, unless ``raw``; ``messages`` is a whole conversation."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of_prompt_or_messages)

    model: Name
    adapter: Name | None = None
    prompt: str = Field(None, min_length=1, max_length=MAX_TEXT)  # type: ignore[assignment]  # absent, never null
    input: str = Field("", max_length=MAX_TEXT, description="appended to the prompt after a blank line")
    raw: bool = Field(False, description="send the prompt (and input) as is, without the chat template")
    messages: list[ChatMessage] = Field(None, min_length=1, max_length=MAX_MESSAGES,  # type: ignore[arg-type]  # absent, never null
                                        description="a conversation; the answer continues it as the assistant")
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=5.0, json_schema_extra=_temperature_schema)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: Literal["auto", "cpu", "cuda", "mps"] | None = Field(None, description="default: auto")
    stream: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either 'prompt' or 'messages'")
        if self.messages is not None and ("input" in self.model_fields_set or "raw" in self.model_fields_set):
            raise ValueError("'input' and 'raw' go with 'prompt'; with 'messages', put everything in the turns")
        if self.temperature is not None and 0 < self.temperature < MIN_SAMPLING_TEMPERATURE:
            raise ValueError(f"temperature {self.temperature!r} is too small to sample with: use 0 for greedy "
                             f"decoding, or at least {MIN_SAMPLING_TEMPERATURE}")
        return self


class BundleFilesCheck(StrictBody):
    paths: list[LocalPath] = Field(..., min_length=1, max_length=MAX_BUNDLE_PATHS,
                                   description="relative to the bundle root")
