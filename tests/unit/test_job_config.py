"""One job configuration, declared once: the request body, the answer and the worker's spec are derived
from :class:`JobConfig`, and every default is filled in one place."""

from __future__ import annotations

from dataclasses import fields

import pytest

from backend.errors import Conflict
from backend.responses import JobConfig as JobConfigAnswer
from backend.runtime_paths import current_layout
from backend.schemas import JobCreate
from backend.services.job_config import STORED_DEFAULTS, JobConfig, ModelChoice, request_fields, resolve
from backend.services.resources import BundledResources
from backend.services.training import TrainingSpec

DEFAULTS = BundledResources(current_layout().resources).defaults["training"]
LLAMA = ModelChoice(id="tiny-llama", architecture="llama", linear_modules=("q_proj", "k_proj", "v_proj"),
                    preset={"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]})
UNKNOWN = ModelChoice(id="new-lm", architecture="newlm", linear_modules=("wq", "wk"), preset={})


def test_the_request_body_is_the_requested_fields_of_the_declaration() -> None:
    assert list(JobCreate.model_fields) == list(request_fields())
    required = [name for name, field in JobCreate.model_fields.items() if field.is_required()]
    assert required == ["model", "dataset"]
    for name, (_, rule) in request_fields().items():
        assert JobCreate.model_fields[name].description == rule.description


def test_the_answer_is_every_field_of_the_declaration() -> None:
    assert list(JobConfigAnswer.model_fields) == [item.name for item in fields(JobConfig)]


def test_the_worker_spec_carries_the_config_as_is() -> None:
    config = resolve({"model": "tiny-llama", "dataset": "d"}, adapter_name="a", model=LLAMA, dataset_id="d",
                     dataset_records=10, defaults=DEFAULTS)
    spec = TrainingSpec(job_id="job-000000000001", config=config, model_path="m", dataset_path="d", data_dir="/x")
    assert TrainingSpec.from_dict(spec.to_dict()) == spec
    assert JobConfigAnswer(**config.to_dict()).model_dump() == config.to_dict()


def test_every_default_comes_from_the_request_then_the_preset_then_defaults_json() -> None:
    config = resolve({"model": "tiny-llama", "dataset": "d"}, adapter_name="a", model=LLAMA, dataset_id="d",
                     dataset_records=10, defaults=DEFAULTS)
    assert (config.lora_r, config.lora_alpha, config.target_modules) == (8, 16, ("q_proj", "v_proj"))
    for name in ("learning_rate", "batch_size", "max_seq_length", "seed", "warmup_steps", "checkpoint_every",
                 "device", "dtype", "train_on"):
        assert getattr(config, name) == DEFAULTS[name], name
    assert config.max_steps == DEFAULTS["max_steps"] == config.total_steps
    asked = resolve({"model": "x", "dataset": "d", "lora_r": 2, "epochs": 2.0, "batch_size": 3}, adapter_name="a",
                    model=UNKNOWN, dataset_id="d", dataset_records=10, defaults=DEFAULTS)
    assert asked.lora_r == 2 and asked.lora_alpha == DEFAULTS["lora_alpha"] and asked.target_modules is None
    assert asked.max_steps is None and asked.total_steps == 8  # 2 epochs of ceil(10 / 3) batches


def test_a_target_module_the_model_lacks_is_a_conflict_naming_the_field() -> None:
    with pytest.raises(Conflict) as raised:
        resolve({"model": "m", "dataset": "d", "target_modules": ["q_proj", "c_attn"]}, adapter_name="a",
                model=LLAMA, dataset_id="d", dataset_records=10, defaults=DEFAULTS)
    assert raised.value.field == "target_modules" and raised.value.status_code == 409


def test_max_steps_wins_over_epochs_as_in_transformers() -> None:
    config = resolve({"model": "m", "dataset": "d", "max_steps": 3, "epochs": 5.0}, adapter_name="a", model=LLAMA,
                     dataset_id="d", dataset_records=10, defaults=DEFAULTS)
    assert (config.max_steps, config.epochs, config.total_steps) == (3, None, 3)


def test_a_config_stored_by_an_earlier_version_reads_as_what_that_version_did() -> None:
    stored = {key: value for key, value in resolve(
        {"model": "m", "dataset": "d"}, adapter_name="a", model=LLAMA, dataset_id="d", dataset_records=10,
        defaults=DEFAULTS).to_dict().items() if key not in STORED_DEFAULTS}
    config = JobConfig.from_dict(stored)
    assert (config.device, config.dtype, config.train_on) == ("cpu", "float32", "all")
