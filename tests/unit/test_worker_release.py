"""The training worker gives back what loading used, once, after loading and before the first step."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from backend.services import training, worker
from backend.services.job_config import JobConfig
from backend.services.training import TrainingSpec, run_training


class FakeTrainee:
    batches_per_epoch = 2
    examples = (1, 2, 3, 4)
    device = "cpu"
    runtime: ClassVar[dict[str, str]] = {"device": "cpu", "dtype": "float32"}

    def __init__(self, calls: list[str]):
        self.calls = calls
        self.scheduler = self
        self.lock = threading.Lock()

    def get_last_lr(self) -> list[float]:
        return [1e-4]

    def train_step(self, step: int) -> float:
        self.calls.append(f"step {step}")
        return 1.0

    def save_adapter(self, step: int, loss: float | None) -> None:
        self.calls.append("save")


CONFIG = JobConfig(model="m", dataset="d", adapter_name="a", architecture="llama", target_modules=("q_proj",),
                   lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-3, max_steps=2, epochs=None,
                   total_steps=2, batch_size=1, max_seq_length=16, seed=0, warmup_steps=0, checkpoint_every=0,
                   device="cpu", dtype="float32", train_on="completions")
SPEC = TrainingSpec(job_id="job-000000000001", config=CONFIG, model_path="m", dataset_path="d", data_dir="/nowhere")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    found: list[str] = []

    def load(spec: TrainingSpec, after_imports=None) -> FakeTrainee:
        found.append("imports")
        if after_imports is not None:
            after_imports()
        found.append("load")
        return FakeTrainee(found)

    monkeypatch.setattr(training, "load_trainee", load)
    return found


def test_release_runs_after_the_imports_and_again_before_the_first_step(calls: list[str]) -> None:
    events: list[dict[str, Any]] = []
    outcome = run_training(SPEC, events.append, lambda: None, release=lambda: calls.append("released"))
    assert outcome.status == "completed"
    assert calls == ["imports", "released", "load", "released", "step 0", "step 1", "save"]


def test_without_release_nothing_extra_runs(calls: list[str]) -> None:
    run_training(SPEC, lambda event: None, lambda: None)
    assert calls == ["imports", "load", "step 0", "step 1", "save"]


def test_the_release_in_the_worker_releases_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import memory_release

    seen: list[bool] = []
    monkeypatch.setattr(memory_release, "release_startup_memory", lambda: seen.append(True))
    worker.release_loading_memory()
    assert seen == [True]
