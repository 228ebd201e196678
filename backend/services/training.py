"""LoRA fine-tuning of a causal LM from a local folder; runs inside the training worker process.

A plain PyTorch loop rather than ``transformers.Trainer``: it imports less, reports every step, checks
for cancel / stop between steps, and checkpoints exactly what resuming needs (adapter weights, optimizer
and scheduler state, step, RNG state). Resuming from a checkpoint continues the same batch order.

- **Data**: every record shape of :mod:`backend.services.chat`; conversations rendered with the model's
  own chat template (or the documented default); with ``train_on = "completions"`` only the assistant's
  (or completion's) tokens carry labels.
- **Device and dtype**: :mod:`backend.services.devices` (CUDA, then MPS, then the CPU; bfloat16 where the
  device supports it). The LoRA weights stay in float32 whatever the base weights' dtype.
- **Targets**: the job's, else peft's default for the model type (all linear layers where peft has none).
- **A prompt stop**: the optimizer step and a checkpoint hold :attr:`Trainee.lock`; a stop request
  saves the last completed step under that lock from another thread, without waiting for the step in
  progress (:meth:`Trainee.checkpoint_now`).
- **Writes stay in the data dir**: every folder written is checked (:func:`backend.safe_io.confined`)
  right before its first byte.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backend import faults
from backend.safe_io import check_tree_unlinked, confined
from backend.services import chat
from backend.services.job_config import JobConfig

StopRequest = Literal["cancel", "stop"] | None
Emit = Callable[[dict[str, Any]], None]

CHECKPOINT = "checkpoint"
CHECKPOINT_STATE = "trainer_state.pt"
CHECKPOINT_ADAPTER = "adapter"
MEMORY_MARGIN_BYTES = 256 << 20
TRAINING_MEMORY_FACTOR = 1.3  # weights, plus activations and the LoRA optimizer state of a small batch


@dataclass(frozen=True, kw_only=True)
class TrainingSpec:
    """What a worker is told: the job's config as is, and where to read and write."""

    job_id: str
    config: JobConfig
    model_path: str
    dataset_path: str
    data_dir: str  # every write goes under it: jobs/<id>/checkpoint, adapters/<name>
    resume: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "config": self.config.to_dict(), "model_path": self.model_path,
                "dataset_path": self.dataset_path, "data_dir": self.data_dir, "resume": self.resume}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        return cls(job_id=data["job_id"], config=JobConfig.from_dict(data["config"]), model_path=data["model_path"],
                   dataset_path=data["dataset_path"], data_dir=data["data_dir"], resume=bool(data.get("resume")))

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    def checkpoint_dir(self, staging: bool = False) -> Path:
        return confined(self.root, "jobs", self.job_id, CHECKPOINT + (".tmp" if staging else ""), field="job")

    def adapter_dir(self, staging: bool = False) -> Path:
        name = self.config.adapter_name + (".tmp" if staging else "")
        return confined(self.root, "adapters", name, field="adapter_name")


@dataclass(frozen=True)
class TrainingOutcome:
    status: Literal["completed", "cancelled", "interrupted"]
    step: int
    loss: float | None


class InsufficientMemoryError(MemoryError):
    """The model would not fit: refused before loading it."""


def check_memory(needed: int, available: int, what: str) -> None:
    if needed > available:
        raise InsufficientMemoryError(
            f"{what} needs about {needed / 2**30:.1f} GiB and {available / 2**30:.1f} GiB is available: free "
            "memory, or pick a smaller model, dtype or device")


def read_inside(root: Path, path: Path) -> Path:
    """``path`` for reading; when it lies in the data dir, proven to have no link on the way there."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return path  # the bundled resources, or a folder the user registered: theirs to arrange
    return confined(root, *relative.parts)


@dataclass
class Trainee:
    """What a run trains: the LoRA-wrapped model, its tokenizer, optimizer and schedule, and the encoded
    examples in a fixed batch order (so a resumed run continues the same order)."""

    spec: TrainingSpec
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    examples: list[chat.Encoded]
    device: str
    runtime: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)
    completed_step: int = 0

    @property
    def batches_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.examples) / self.spec.config.batch_size))

    def batch(self, index: int) -> tuple[Any, Any, Any]:
        """Inputs, attention mask and labels of batch ``index``: a seeded shuffle per epoch, padded."""
        import torch

        size = self.spec.config.batch_size
        epoch, position = divmod(index, self.batches_per_epoch)
        generator = torch.Generator().manual_seed(self.spec.config.seed + epoch)
        order = torch.randperm(len(self.examples), generator=generator).tolist()
        chosen = [self.examples[i] for i in order[position * size:(position + 1) * size]]
        width = max(len(item.input_ids) for item in chosen)
        input_ids = torch.full((len(chosen), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chosen), width), dtype=torch.long)
        labels = torch.full((len(chosen), width), chat.IGNORE, dtype=torch.long)
        for row, item in enumerate(chosen):
            length = len(item.input_ids)
            input_ids[row, :length] = torch.tensor(item.input_ids, dtype=torch.long)
            labels[row, :length] = torch.tensor(item.labels, dtype=torch.long)
            attention[row, :length] = 1
        return input_ids.to(self.device), attention.to(self.device), labels.to(self.device)

    def train_step(self, index: int) -> float:
        """One optimizer step on batch ``index``; returns its loss. Forward and backward run unlocked (a stop
        may checkpoint meanwhile); only the update that changes the weights and optimizer holds the lock."""
        input_ids, attention, labels = self.batch(index)
        output = self.model(input_ids=input_ids, attention_mask=attention, labels=labels)
        output.loss.backward()
        with self.lock:
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.completed_step = index + 1
        return float(output.loss.detach())

    def save_checkpoint(self, at_step: int) -> None:
        """Adapter, optimizer, schedule, RNG and step, written beside the old checkpoint and swapped in.
        The caller holds :attr:`lock`."""
        import torch

        checkpoint, staging = self.spec.checkpoint_dir(), self.spec.checkpoint_dir(staging=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.model.save_pretrained(staging / CHECKPOINT_ADAPTER)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "rng": torch.get_rng_state(), "step": at_step}, staging / CHECKPOINT_STATE)
        shutil.rmtree(checkpoint, ignore_errors=True)
        staging.rename(checkpoint)

    def checkpoint_now(self) -> int:
        """Save the last completed step from any thread, without waiting for the step in progress (its
        forward and backward are dropped; the weights it would change are not changed yet)."""
        with self.lock:
            self.save_checkpoint(self.completed_step)
            return self.completed_step

    def restore_checkpoint(self) -> int:
        """Load what :meth:`save_checkpoint` wrote; returns the step to continue from."""
        import torch

        folder = read_inside(self.spec.root, self.spec.checkpoint_dir())
        state = torch.load(folder / CHECKPOINT_STATE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.completed_step = int(state["step"])
        return self.completed_step

    def save_adapter(self, steps: int, loss: float | None) -> None:
        """The trained adapter, written beside the target folder and swapped in; the checkpoint goes."""
        adapter_dir, staging = self.spec.adapter_dir(), self.spec.adapter_dir(staging=True)
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(staging)
        (staging / "peft_engine.json").write_text(
            json.dumps({"job_id": self.spec.job_id, "steps": steps, "final_loss": loss, **self.runtime}, indent=2),
            encoding="utf-8")
        check_tree_unlinked(self.spec.root, staging)
        shutil.rmtree(adapter_dir, ignore_errors=True)
        staging.rename(adapter_dir)
        shutil.rmtree(self.spec.checkpoint_dir(), ignore_errors=True)


def can_resume(spec: TrainingSpec) -> bool:
    return spec.resume and (spec.checkpoint_dir() / CHECKPOINT_STATE).is_file()


def encode_examples(examples: list[chat.Example], tokenizer: Any, render: chat.Render, *, max_length: int,
                    train_on: str) -> tuple[list[chat.Encoded], int]:
    """Every example encoded with its labels; returns (the usable ones, how many had no trained token left
    once cut at ``max_length``)."""
    bos_id = tokenizer.bos_token_id
    adds_bos = bos_id is not None and tokenizer("a").input_ids[:1] == [bos_id]

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False).input_ids)

    encoded, empty = [], 0
    for number, example in enumerate(examples, start=1):
        try:
            pieces = chat.segments(example, render, eos_token=tokenizer.eos_token)
        except chat.RecordError as exc:
            raise ValueError(f"record {number}: {exc}") from exc
        except Exception as exc:  # the template's own error (jinja2.TemplateError, a raise_exception)
            raise ValueError(f"record {number}: the model's chat template cannot render it "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        item = chat.encode(pieces, tokenize, bos_id=bos_id if adds_bos else None, bos_token=tokenizer.bos_token,
                           max_length=max_length, train_on=train_on)
        if item.trained_tokens == 0:
            empty += 1
        else:
            encoded.append(item)
    if not encoded:
        raise ValueError(f"no example has a token to learn from within max_seq_length={max_length}: every answer "
                         "starts after it; raise max_seq_length or shorten the prompts")
    return encoded, empty


def target_modules_for(spec: TrainingSpec, model_type: str) -> list[str] | str:
    if spec.config.target_modules:
        return list(spec.config.target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    return list(default) if default else "all-linear"


def load_trainee(spec: TrainingSpec, after_imports: Callable[[], None] | None = None) -> Trainee:
    """Load the base model from its folder onto the chosen device, wrap it in LoRA (or the checkpoint's
    adapter when resuming), encode the dataset, and build the optimizer and its linear warm-up / decay
    schedule. ``after_imports`` runs once torch, peft and transformers are imported, before anything loads."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.services.devices import choose_device, choose_dtype, device_facts, device_reason
    from backend.services.model_folder import inspect_folder
    from backend.services.model_probe import chat_renderer

    if after_imports is not None:
        after_imports()
    config = spec.config
    facts = device_facts()
    device = choose_device(config.device, facts)
    dtype = choose_dtype(config.dtype, device, facts)
    model_path = read_inside(spec.root, Path(spec.model_path))
    summary = inspect_folder(model_path)
    check_memory(int(summary.load_bytes(dtype) * TRAINING_MEMORY_FACTOR) + MEMORY_MARGIN_BYTES,
                 available_memory(device), f"training {config.model} in {dtype} on {device}")

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=False, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype), trust_remote_code=False,
                                                local_files_only=True)
    base.to(device)
    targets = target_modules_for(spec, summary.model_type)
    if can_resume(spec):
        checkpoint = read_inside(spec.root, spec.checkpoint_dir())
        model = PeftModel.from_pretrained(base, checkpoint / CHECKPOINT_ADAPTER, is_trainable=True)
    else:
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        model = get_peft_model(base, lora)
    model.train()
    positions = getattr(base.config, "max_position_embeddings", None)
    max_length = min(config.max_seq_length, positions) if isinstance(positions, int) and positions > 0 \
        else config.max_seq_length
    render = chat_renderer(tokenizer)
    examples, empty = encode_examples(chat.read_examples(read_inside(spec.root, Path(spec.dataset_path))),
                                      tokenizer, render, max_length=max_length, train_on=config.train_on)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    warmup, total = config.warmup_steps, config.total_steps

    def lr_factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    resolved = model.peft_config["default"].target_modules
    runtime = {
        "device": device, "dtype": dtype, "device_name": facts.cuda_name if device == "cuda" else None,
        "device_reason": device_reason(config.device, device, facts),
        # peft resolves all-linear to every layer's full name: its leaf names say the same, briefly
        "target_modules": sorted({str(name).rsplit(".", 1)[-1] for name in resolved})
        if isinstance(resolved, set | list | tuple) else resolved,
        "trainable_parameters": sum(p.numel() for p in trainable), "examples": len(examples),
        "examples_without_trained_tokens": empty, "max_seq_length": max_length,
        "chat_template": "model" if getattr(tokenizer, "chat_template", None) else "default",
    }
    return Trainee(spec, model, tokenizer, optimizer, scheduler, examples, device, runtime)


def available_memory(device: str) -> int:
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def run_training(spec: TrainingSpec, emit: Emit, stop_requested: Callable[[], StopRequest],
                 release: Callable[[], None] | None = None,
                 on_trainee: Callable[[Trainee], None] | None = None) -> TrainingOutcome:
    """Train to ``total_steps``, reporting each step, checking for cancel / stop between steps and
    checkpointing every ``checkpoint_every`` steps (and on stop). ``release`` runs twice: once the ML
    stack is imported, and once the model and data are loaded (and a checkpoint restored), before the
    first step. ``on_trainee`` gets the trainee once it exists (the worker's prompt stop uses it)."""
    emit({"type": "status", "phase": "loading"})
    started = time.perf_counter()
    trainee = load_trainee(spec, after_imports=release)
    step = 0
    if can_resume(spec):
        step = trainee.restore_checkpoint()
        emit({"type": "status", "phase": "resumed", "step": step})
    emit({"type": "runtime", **trainee.runtime})
    if on_trainee is not None:
        on_trainee(trainee)
    if release is not None:
        release()
    total = spec.config.total_steps
    emit({"type": "status", "phase": "training", "load_seconds": round(time.perf_counter() - started, 3),
          "total_steps": total, "examples": len(trainee.examples), "device": trainee.device,
          "dtype": trainee.runtime["dtype"]})
    loss: float | None = None
    loop_started, first_step = time.perf_counter(), step
    while step < total:
        request = stop_requested()
        if request == "cancel":
            return TrainingOutcome("cancelled", step, loss)
        if request == "stop":
            emit({"type": "checkpoint", "step": trainee.checkpoint_now()})
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
        if spec.config.checkpoint_every and step % spec.config.checkpoint_every == 0 and step < total:
            emit({"type": "checkpoint", "step": trainee.checkpoint_now()})
    emit({"type": "runtime", **trainee.runtime, **measured_speed(trainee.device, step - first_step,
                                                                  time.perf_counter() - loop_started)})
    with trainee.lock:
        trainee.save_adapter(step, loss)
    return TrainingOutcome("completed", step, loss)


def measured_speed(device: str, steps: int, seconds: float) -> dict[str, Any]:
    """How fast the steps of this run went, and (CUDA) the peak memory torch allocated on the GPU."""
    import torch

    peak = int(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    return {"steps_per_second": round(steps / seconds, 4) if steps and seconds > 0 else None,
            "peak_gpu_memory_bytes": peak}
