"""Request bodies. Limits live here so a bad value is a 422 naming the field, before any work."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux; longer is never a real path
# Sampling divides the logits by the temperature: below this, float32 logits overflow to inf and
# sampling fails (schemathesis found 1e-308). 0 means greedy decoding, which is what the limit tends to.
MIN_SAMPLING_TEMPERATURE = 0.01


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


LocalPath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_LENGTH), AfterValidator(_no_nul)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(StrictBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 3, "checkpoint_every": 0},
    ]})

    model: str = Field(..., description="model id (see GET /api/models)")
    dataset: str = Field(..., description="dataset id (see GET /api/datasets)")
    adapter_name: str | None = Field(None, description="name of the adapter to save; default: the job id")
    target_modules: list[str] | None = Field(None, min_length=1, max_length=16)
    lora_r: int | None = Field(None, ge=1, le=256)
    lora_alpha: int | None = Field(None, ge=1, le=1024)
    lora_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    learning_rate: float | None = Field(None, gt=0.0, le=1.0)
    max_steps: int | None = Field(None, ge=1, le=1_000_000)
    epochs: float | None = Field(None, gt=0.0, le=1000.0)
    batch_size: int | None = Field(None, ge=1, le=1024)
    max_seq_length: int | None = Field(None, ge=8, le=32768)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    warmup_steps: int | None = Field(None, ge=0, le=1_000_000)
    checkpoint_every: int | None = Field(None, ge=0, le=1_000_000, description="0 disables periodic checkpoints")


class ModelRegister(StrictBody):
    name: str = Field(..., description="id for the model")
    path: LocalPath = Field(..., description="local folder written by save_pretrained")


class AdapterMerge(StrictBody):
    name: str = Field(..., description="id of the merged model to create")


class GenerateRequest(StrictBody):
    model: str
    adapter: str | None = None
    prompt: str = Field(..., min_length=1, max_length=20_000)
    input: str = Field("", max_length=20_000, description="optional input for the instruction template")
    raw: bool = Field(False, description="send the prompt as is, without the instruction template")
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=5.0, description=(
        f"0: greedy decoding; otherwise sampling, from {MIN_SAMPLING_TEMPERATURE}"))
    seed: int = Field(0, ge=0, le=2**32 - 1)
    stream: bool = False

    @field_validator("temperature")
    @classmethod
    def _samples_or_is_greedy(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_SAMPLING_TEMPERATURE:
            raise ValueError(f"temperature {value!r} is too small to sample with: use 0 for greedy decoding, "
                             f"or at least {MIN_SAMPLING_TEMPERATURE}")
        return value

    @model_validator(mode="after")
    def _input_needs_template(self) -> GenerateRequest:
        if self.raw and self.input:
            raise ValueError("'input' is only used with the instruction template; drop it or set raw=false")
        return self


class BundleFilesCheck(StrictBody):
    paths: list[LocalPath] = Field(..., min_length=1, max_length=10_000, description="relative to the bundle root")
