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


@dataclass
class Trainee:
    """What a run trains: the LoRA-wrapped model, its tokenizer, optimizer and schedule, and the
    tokenized examples in a fixed batch order (so a resumed run continues the same order)."""

    spec: TrainingSpec
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    examples: list[Any]

    @property
    def batches_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.examples) / self.spec.batch_size))

    def batch(self, index: int) -> tuple[Any, Any, Any]:
        """Inputs, attention mask and labels of batch ``index``: a seeded shuffle per epoch, padded."""
        import torch

        size = self.spec.batch_size
        epoch, position = divmod(index, self.batches_per_epoch)
        generator = torch.Generator().manual_seed(self.spec.seed + epoch)
        order = torch.randperm(len(self.examples), generator=generator).tolist()
        chosen = [self.examples[i] for i in order[position * size:(position + 1) * size]]
        width = max(len(item) for item in chosen)
        input_ids = torch.full((len(chosen), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, item in enumerate(chosen):
            input_ids[row, : len(item)] = item
            attention[row, : len(item)] = 1
        return input_ids, attention, input_ids.masked_fill(attention == 0, -100)

    def train_step(self, index: int) -> float:
        """One optimizer step on batch ``index``; returns its loss."""
        input_ids, attention, labels = self.batch(index)
        output = self.model(input_ids=input_ids, attention_mask=attention, labels=labels)
        output.loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(output.loss.detach())

    def save_checkpoint(self, at_step: int) -> None:
        """Adapter, optimizer, schedule, RNG and step, written beside the old checkpoint and swapped in."""
        import torch

        checkpoint = Path(self.spec.checkpoint_dir)
        staging = checkpoint.with_name(checkpoint.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.model.save_pretrained(staging / CHECKPOINT_ADAPTER)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "rng": torch.get_rng_state(), "step": at_step}, staging / CHECKPOINT_STATE)
        shutil.rmtree(checkpoint, ignore_errors=True)
        staging.rename(checkpoint)

    def restore_checkpoint(self) -> int:
        """Load what :meth:`save_checkpoint` wrote; returns the step to continue from."""
        import torch

        state = torch.load(Path(self.spec.checkpoint_dir) / CHECKPOINT_STATE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return int(state["step"])

    def save_adapter(self, steps: int, loss: float | None) -> None:
        """The trained adapter, written beside the target folder and swapped in; the checkpoint goes."""
        adapter_dir = Path(self.spec.adapter_dir)
        staging = adapter_dir.with_name(adapter_dir.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(staging)
        (staging / "peft_engine.json").write_text(
            json.dumps({"job_id": self.spec.job_id, "steps": steps, "final_loss": loss}, indent=2), encoding="utf-8")
        shutil.rmtree(adapter_dir, ignore_errors=True)
        staging.rename(adapter_dir)
        shutil.rmtree(Path(self.spec.checkpoint_dir), ignore_errors=True)


def can_resume(spec: TrainingSpec) -> bool:
    return spec.resume and (Path(spec.checkpoint_dir) / CHECKPOINT_STATE).is_file()


def load_trainee(spec: TrainingSpec, after_imports: Callable[[], None] | None = None) -> Trainee:
    """Load the base model from its folder, wrap it in LoRA (or the checkpoint's adapter when resuming),
    tokenize the dataset, and build the optimizer and its linear warm-up / decay schedule.
    ``after_imports`` runs once torch, peft and transformers are imported, before anything is loaded."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if after_imports is not None:
        after_imports()

    torch.manual_seed(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(spec.model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=torch.float32)
    if can_resume(spec):
        model = PeftModel.from_pretrained(base, Path(spec.checkpoint_dir) / CHECKPOINT_ADAPTER, is_trainable=True)
    else:
        lora = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                          target_modules=list(spec.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(base, lora)
    model.train()
    texts = [format_record(record) + (tokenizer.eos_token or "") for record in load_records(Path(spec.dataset_path))]
    encoded = tokenizer(texts, truncation=True, max_length=spec.max_seq_length, add_special_tokens=True)
    examples = [torch.tensor(ids, dtype=torch.long) for ids in encoded["input_ids"]]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.learning_rate)
    warmup, total = spec.warmup_steps, spec.total_steps

    def lr_factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    return Trainee(spec, model, tokenizer, optimizer, scheduler, examples)


def run_training(spec: TrainingSpec, emit: Emit, stop_requested: Callable[[], StopRequest],
                 release: Callable[[], None] | None = None) -> TrainingOutcome:
    """Train to ``spec.total_steps``, reporting each step, checking for cancel / stop between steps and
    checkpointing every ``checkpoint_every`` steps (and on stop). ``release`` runs twice: once the ML
    stack is imported, and once the model and data are loaded (and a checkpoint restored), before the
    first step."""
    emit({"type": "status", "phase": "loading"})
    started = time.perf_counter()
    trainee = load_trainee(spec, after_imports=release)
    step = 0
    if can_resume(spec):
        step = trainee.restore_checkpoint()
        emit({"type": "status", "phase": "resumed", "step": step})
    if release is not None:
        release()
    total = spec.total_steps
    emit({"type": "status", "phase": "training", "load_seconds": round(time.perf_counter() - started, 3),
          "total_steps": total, "examples": len(trainee.examples)})
    loss: float | None = None
    loop_started, first_step = time.perf_counter(), step
    while step < total:
        request = stop_requested()
        if request == "cancel":
            return TrainingOutcome("cancelled", step, loss)
        if request == "stop":
            trainee.save_checkpoint(step)
            emit({"type": "checkpoint", "step": step})
            return TrainingOutcome("interrupted", step, loss)
        faults.check("worker-step")
        loss = trainee.train_step(step)
        step += 1
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step}: lower the learning rate")
        per_step = (time.perf_counter() - loop_started) / (step - first_step)
        emit({"type": "step", "step": step, "total_steps": total, "loss": round(loss, 6),
              "learning_rate": trainee.scheduler.get_last_lr()[0],
              "epoch": round(step / trainee.batches_per_epoch, 4), "eta_seconds": round(per_step * (total - step), 3)})
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < total:
            trainee.save_checkpoint(step)
            emit({"type": "checkpoint", "step": step})
    trainee.save_adapter(step, loss)
    return TrainingOutcome("completed", step, loss)
