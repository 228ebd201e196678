"""The training worker gives back what loading used, once, after loading and before the first step."""

from __future__ import annotations

from typing import Any

import pytest

from backend.services import training, worker
from backend.services.training import TrainingSpec, run_training


class FakeTrainee:
    batches_per_epoch = 2
    examples = (1, 2, 3, 4)

    def __init__(self, calls: list[str]):
        self.calls = calls
        self.scheduler = self

    def get_last_lr(self) -> list[float]:
        return [1e-4]

    def train_step(self, step: int) -> float:
        self.calls.append(f"step {step}")
        return 1.0

    def save_adapter(self, step: int, loss: float | None) -> None:
        self.calls.append("save")


SPEC = TrainingSpec(job_id="j", model_path="m", dataset_path="d", adapter_dir="a", checkpoint_dir="c",
                    target_modules=("q_proj",), r=4, alpha=8, dropout=0.0, learning_rate=1e-3, total_steps=2,
                    batch_size=1, max_seq_length=16, seed=0, warmup_steps=0, checkpoint_every=0)


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
