"""LoRA fine-tuning of a causal LM from a local folder; runs inside the training worker process.

A plain PyTorch loop rather than ``transformers.Trainer``: it imports less, reports every step, checks
for cancel / stop between steps, and checkpoints exactly what resuming needs (adapter weights, optimizer
and scheduler state, step, RNG state). Resuming from a checkpoint continues the same batch order.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from backend import faults
from backend.services.datasets import load_records
from backend.services.prompting import format_record

StopRequest = Literal["cancel", "stop"] | None
Emit = Callable[[dict[str, Any]], None]

CHECKPOINT_STATE = "trainer_state.pt"
CHECKPOINT_ADAPTER = "adapter"


@dataclass(frozen=True, kw_only=True)
class TrainingSpec:
    job_id: str
    model_path: str
    dataset_path: str
    adapter_dir: str
    checkpoint_dir: str
    target_modules: tuple[str, ...]
    r: int
    alpha: int
    dropout: float
    learning_rate: float
    total_steps: int
    batch_size: int
    max_seq_length: int
    seed: int
    warmup_steps: int
    checkpoint_every: int
    resume: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        return cls(**{**data, "target_modules": tuple(data["target_modules"])})


@dataclass(frozen=True)
class TrainingOutcome:
    status: Literal["completed", "cancelled", "interrupted"]
    step: int
    loss: float | None


def steps_for(records: int, batch_size: int, max_steps: int | None, epochs: float | None) -> int:
    """Total optimizer steps from either ``max_steps`` or ``epochs`` over ``records`` examples."""
    if max_steps is not None:
        return max_steps
    assert epochs is not None
    return max(1, math.ceil(epochs * math.ceil(records / batch_size)))


def run_training(spec: TrainingSpec, emit: Emit, stop_requested: Callable[[], StopRequest]) -> TrainingOutcome:
    emit({"type": "status", "phase": "loading"})
    started = time.perf_counter()
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(spec.model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=torch.float32)
    checkpoint = Path(spec.checkpoint_dir)
    state_file = checkpoint / CHECKPOINT_STATE
    resuming = spec.resume and state_file.is_file()
    if resuming:
        model = PeftModel.from_pretrained(base, checkpoint / CHECKPOINT_ADAPTER, is_trainable=True)
    else:
        lora = LoraConfig(
            r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
            target_modules=list(spec.target_modules), task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, lora)
    model.train()

    texts = [format_record(record) + (tokenizer.eos_token or "") for record in load_records(Path(spec.dataset_path))]
    encoded = tokenizer(texts, truncation=True, max_length=spec.max_seq_length, add_special_tokens=True)
    examples = [torch.tensor(ids, dtype=torch.long) for ids in encoded["input_ids"]]
    batches_per_epoch = max(1, math.ceil(len(examples) / spec.batch_size))

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate)
    warmup, total = spec.warmup_steps, spec.total_steps

    def lr_factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step = 0
    if resuming:
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step = int(state["step"])
        emit({"type": "status", "phase": "resumed", "step": step})

    def batch_for(index: int) -> tuple[Any, Any, Any]:
        epoch, position = divmod(index, batches_per_epoch)
        generator = torch.Generator().manual_seed(spec.seed + epoch)
        order = torch.randperm(len(examples), generator=generator).tolist()
        chosen = [examples[i] for i in order[position * spec.batch_size:(position + 1) * spec.batch_size]]
        width = max(len(item) for item in chosen)
        input_ids = torch.full((len(chosen), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, item in enumerate(chosen):
            input_ids[row, : len(item)] = item
            attention[row, : len(item)] = 1
        labels = input_ids.masked_fill(attention == 0, -100)
        return input_ids, attention, labels

    def save_checkpoint(at_step: int) -> None:
        staging = checkpoint.with_name(checkpoint.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging / CHECKPOINT_ADAPTER)
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": torch.get_rng_state(), "step": at_step},
            staging / CHECKPOINT_STATE,
        )
        shutil.rmtree(checkpoint, ignore_errors=True)
        staging.rename(checkpoint)
        emit({"type": "checkpoint", "step": at_step})

    emit({"type": "status", "phase": "training", "load_seconds": round(time.perf_counter() - started, 3),
          "total_steps": total, "examples": len(examples)})
    loss_value: float | None = None
    loop_started = time.perf_counter()
    first_step = step
    while step < total:
        request = stop_requested()
        if request == "cancel":
            return TrainingOutcome("cancelled", step, loss_value)
        if request == "stop":
            save_checkpoint(step)
            return TrainingOutcome("interrupted", step, loss_value)
        faults.check("worker-step")
        input_ids, attention, labels = batch_for(step)
        output = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        output.loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = float(output.loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}: lower the learning rate")
        elapsed = time.perf_counter() - loop_started
        per_step = elapsed / (step - first_step)
        emit({
            "type": "step", "step": step, "total_steps": total, "loss": round(loss_value, 6),
            "learning_rate": scheduler.get_last_lr()[0], "epoch": round(step / batches_per_epoch, 4),
            "eta_seconds": round(per_step * (total - step), 3),
        })
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < total:
            save_checkpoint(step)

    adapter_dir = Path(spec.adapter_dir)
    staging = adapter_dir.with_name(adapter_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    (staging / "peft_engine.json").write_text(
        json.dumps({"job_id": spec.job_id, "steps": step, "final_loss": loss_value}, indent=2), encoding="utf-8"
    )
    shutil.rmtree(adapter_dir, ignore_errors=True)
    staging.rename(adapter_dir)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return TrainingOutcome("completed", step, loss_value)
