"""A training job's configuration, declared once.

:class:`JobConfig` is the one declaration. Everything else derives from it:

- the request body (``backend.schemas.JobCreate``): every field marked :func:`requested`, optional
  unless required, with the same limits, built by :func:`backend.schemas.request_model`;
- the answer (``backend.responses.JobConfig``): every field, built from the same type;
- the worker's spec (:class:`backend.services.training.TrainingSpec`): holds a ``JobConfig`` as is;
- the defaults: :func:`resolve` fills every field from the request, then the model's LoRA preset, then
  ``defaults.json``, in that order, in one place.

``tests/unit/test_job_config.py`` keeps the three in step. Nothing here imports pydantic or torch: the
training worker reads this module too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

from backend.errors import Conflict

Device = Literal["auto", "cpu", "cuda", "mps"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
TrainOn = Literal["completions", "all"]

DEVICES: tuple[str, ...] = get_args(Device)
DTYPES: tuple[str, ...] = get_args(Dtype)
TRAIN_ON: tuple[str, ...] = get_args(TrainOn)

MODULE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # a module's attribute name (q_proj, c_attn, Wqkv)
MAX_TARGET_MODULES = 64


@dataclass(frozen=True)
class Requested:
    """How a request may set a field: its description and limits (pydantic ``Field`` keyword names)."""

    description: str
    required: bool = False
    limits: Mapping[str, Any] = field(default_factory=dict)
    item_limits: Mapping[str, Any] = field(default_factory=dict)  # for each item of a list field


def requested(description: str, *, required: bool = False, items: Mapping[str, Any] | None = None,
              **limits: Any) -> dict[str, Requested]:
    return {"request": Requested(description, required, limits, items or {})}


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """Every setting of a job, filled in; what ``GET /api/jobs/{id}`` shows as ``config``."""

    model: str = field(metadata=requested("model id (see GET /api/models)", required=True))
    dataset: str = field(metadata=requested("dataset id (see GET /api/datasets)", required=True))
    adapter_name: str = field(metadata=requested("name of the adapter to save; default: the job id"))
    architecture: str  # the model's model_type, from its config.json
    target_modules: tuple[str, ...] | None = field(metadata=requested(
        "module names to wrap in LoRA; default: the model family's preset, else peft's default for its model "
        "type (all linear layers when peft has none); null in a stored job: resolved when it starts",
        min_length=1, max_length=MAX_TARGET_MODULES, items={"pattern": MODULE_NAME_PATTERN}))
    lora_r: int = field(metadata=requested("LoRA rank", ge=1, le=256))
    lora_alpha: int = field(metadata=requested("LoRA alpha (scale = alpha / r)", ge=1, le=1024))
    lora_dropout: float = field(metadata=requested("dropout on the LoRA input", ge=0.0, lt=1.0))
    learning_rate: float = field(metadata=requested("peak learning rate (AdamW)", gt=0.0, le=1.0))
    max_steps: int | None = field(metadata=requested(
        "optimizer steps; wins over epochs when both are given (as in transformers)", ge=1, le=1_000_000))
    epochs: float | None = field(metadata=requested("passes over the dataset; ignored when max_steps is given",
                                                    gt=0.0, le=1000.0))
    total_steps: int  # from max_steps, or epochs over the dataset
    batch_size: int = field(metadata=requested("examples per step", ge=1, le=1024))
    max_seq_length: int = field(metadata=requested("tokens per example; longer ones are cut", ge=8, le=32768))
    seed: int = field(metadata=requested("random seed (shuffle, LoRA init, dropout)", ge=0, le=2**32 - 1))
    warmup_steps: int = field(metadata=requested("linear warm-up steps", ge=0, le=1_000_000))
    checkpoint_every: int = field(metadata=requested("checkpoint every N steps; 0 disables periodic checkpoints",
                                                     ge=0, le=1_000_000))
    device: Device = field(metadata=requested(
        "where to train: auto picks CUDA, then Apple MPS, then the CPU; a device this machine lacks is refused"))
    dtype: Dtype = field(metadata=requested(
        "weights' dtype while training: auto picks bfloat16 where the device supports it, else float32"))
    train_on: TrainOn = field(metadata=requested(
        "completions: the loss counts only the assistant's (or completion's) tokens; all: every token"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules) if self.target_modules is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        """A stored or sent config; keys an earlier version did not write take their defaults."""
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key, value in STORED_DEFAULTS.items():
            values.setdefault(key, value)
        targets = values.get("target_modules")
        values["target_modules"] = tuple(targets) if targets is not None else None
        return cls(**values)


# What a config stored by an earlier version lacks, and what those jobs did then.
STORED_DEFAULTS: Mapping[str, Any] = {"device": "cpu", "dtype": "float32", "train_on": "all"}


def request_fields() -> dict[str, tuple[Any, Requested]]:
    """{name: (the field's type, how a request sets it)} for every field a request may set, in order."""
    hints = get_type_hints(JobConfig)
    return {item.name: (hints[item.name], item.metadata["request"]) for item in fields(JobConfig)
            if "request" in item.metadata}


def field_names() -> tuple[str, ...]:
    return tuple(item.name for item in fields(JobConfig))


assert all(item.default is MISSING for item in fields(JobConfig)), "defaults are filled in resolve(), not here"


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """What :func:`resolve` needs to know of the chosen model."""

    id: str
    architecture: str
    linear_modules: tuple[str, ...] | None  # leaf names of its linear layers; None: not known yet
    preset: Mapping[str, Any]  # r, alpha, dropout and (optionally) target_modules, from the LoRA presets


def steps_for(records: int, batch_size: int, max_steps: int | None, epochs: float | None) -> int:
    """Total optimizer steps from either ``max_steps`` or ``epochs`` over ``records`` examples."""
    if max_steps is not None:
        return max_steps
    if epochs is None:
        raise ValueError("steps_for needs max_steps or epochs")
    return max(1, math.ceil(epochs * math.ceil(records / batch_size)))


def resolve(request: Mapping[str, Any], *, adapter_name: str, model: ModelChoice, dataset_id: str,
            dataset_records: int, defaults: Mapping[str, Any]) -> JobConfig:
    """The whole config: each field from the request, else the model's preset, else ``defaults``
    (``defaults.json``'s ``training`` table). Raises InvalidInput naming the field."""

    def pick(name: str, fallback: Any) -> Any:
        value = request.get(name)
        return fallback if value is None else value

    targets = request.get("target_modules")
    if targets is not None:
        targets = check_target_modules(targets, model)
    elif model.preset.get("target_modules"):
        targets = tuple(model.preset["target_modules"])
    batch_size = pick("batch_size", defaults["batch_size"])
    max_steps, epochs = request.get("max_steps"), request.get("epochs")
    if max_steps is not None:
        epochs = None  # max_steps wins, as in transformers' TrainingArguments: the config says what runs
    if max_steps is None and epochs is None:
        max_steps = defaults["max_steps"]
    return JobConfig(
        model=model.id, dataset=dataset_id, adapter_name=adapter_name, architecture=model.architecture,
        target_modules=tuple(targets) if targets is not None else None,
        lora_r=pick("lora_r", model.preset.get("r", defaults["lora_r"])),
        lora_alpha=pick("lora_alpha", model.preset.get("alpha", defaults["lora_alpha"])),
        lora_dropout=pick("lora_dropout", model.preset.get("dropout", defaults["lora_dropout"])),
        learning_rate=pick("learning_rate", defaults["learning_rate"]),
        max_steps=max_steps, epochs=epochs, total_steps=steps_for(dataset_records, batch_size, max_steps, epochs),
        batch_size=batch_size, max_seq_length=pick("max_seq_length", defaults["max_seq_length"]),
        seed=pick("seed", defaults["seed"]), warmup_steps=pick("warmup_steps", defaults["warmup_steps"]),
        checkpoint_every=pick("checkpoint_every", defaults["checkpoint_every"]),
        device=pick("device", defaults["device"]), dtype=pick("dtype", defaults["dtype"]),
        train_on=pick("train_on", defaults["train_on"]),
    )


def check_target_modules(targets: Sequence[str], model: ModelChoice) -> tuple[str, ...]:
    """The requested target modules, each one a linear layer of the model (when its layers are known)."""
    unique = tuple(dict.fromkeys(targets))
    if model.linear_modules is not None:
        unknown = [name for name in unique if name not in model.linear_modules]
        if unknown:
            raise Conflict(
                f"target module(s) {', '.join(unknown)} are not linear layers of model {model.id!r}",
                field="target_modules", allowed=model.linear_modules,
            )
    return unique
