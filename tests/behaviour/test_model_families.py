"""The models and data users bring, on one server of the variant under test: every family of
``tests/support/tiny_models.py`` is registered, trained on chat data with its own template, generates
(plain and chat), merges, and generates from the merge; every dataset shape trains; what cannot be
trained is refused with the reason, and no code from a model folder ever runs.

One server for the module (a model probe and a worker per family are the cost: about 10 s a family in
a build)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend_client.manager import BackendProcess
from tests.support import TINY_MODEL, RunningBackends, Target
from tests.support.jobs_api import wait_status
from tests.support.tiny_models import (
    CASES,
    FAMILIES,
    write_all,
    write_encoder_only,
    write_family,
    write_pickle_checkpoint,
    write_remote_code_model,
)

FINAL = ("completed", "cancelled", "failed", "interrupted")
CHAT = [
    {"messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2 plus 2?"},
                  {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3 plus 3?"},
                  {"role": "assistant", "content": "6."}]},
    {"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]},
    {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima."}]},
    {"messages": [{"role": "user", "content": "Opposite of hot?"}, {"role": "assistant", "content": "Cold."}]},
]
SHAPES = {
    "messages": CHAT,
    "sharegpt": [{"conversations": [{"from": "human", "value": "Capital of France?"},
                                    {"from": "gpt", "value": "Paris."}]}] * 4,
    "prompt_completion": [{"prompt": "The opposite of hot is", "completion": " cold."}] * 4,
    "alpaca": [{"instruction": "Reverse the word", "input": "abc", "output": "cba"}] * 4,
    "text": [{"text": "A plain sentence to learn from."}] * 4,
}
FAMILY_CASES = [*FAMILIES, *CASES]


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, target: Target) -> Iterator[BackendProcess]:
    running = RunningBackends(tmp_path_factory.mktemp("families"), target)
    try:
        _, process = running.start()
        for shape, records in SHAPES.items():
            response = process.request("POST", f"/api/datasets?name={shape}", raw_body=jsonl(records))
            assert response.status == 201, response.summary()
            assert response.json()["formats"] == [shape]
        yield process
    finally:
        running.close()


def train(server: BackendProcess, model: str, dataset: str, **fields: object) -> dict:
    body = {"model": model, "dataset": dataset, "max_steps": 3, "batch_size": 2, "learning_rate": 0.01,
            "checkpoint_every": 0, **fields}
    response = server.request("POST", "/api/jobs", body, timeout=300)
    assert response.status == 202, response.summary()
    return wait_status(server, response.json()["id"], *FINAL, timeout=300)


def generate(server: BackendProcess, **body: object) -> dict:
    response = server.request("POST", "/api/generate", {"max_new_tokens": 6, **body}, timeout=300)
    assert response.status == 200, response.summary()
    return response.json()


@pytest.mark.parametrize("name", FAMILY_CASES)
def test_a_family_trains_generates_and_merges(name: str, server: BackendProcess, folders: dict[str, Path]) -> None:
    registered = server.request("POST", "/api/models", {"name": name, "path": str(folders[name])}, timeout=300)
    assert registered.status == 201, registered.summary()
    model = registered.json()
    family = FAMILIES.get(name)
    if family is not None:
        assert model["architecture"] == family.model_type
        assert model["details"]["chat_template"] is (family.template is not None)
    job = train(server, name, "messages", adapter_name=f"{name}-lora")
    assert job["status"] == "completed", job
    runtime = job["runtime"]
    assert runtime["device"] == "cpu" and runtime["dtype"] == "float32" and runtime["examples"] == len(CHAT)
    assert runtime["chat_template"] == ("model" if model["details"]["chat_template"] else "default")
    assert runtime["target_modules"], runtime

    plain = generate(server, model=name, prompt="What is 2 plus 2?")
    chat = generate(server, model=name, messages=[{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "What is 2 plus 2?"}])
    assert plain["prompt_tokens"] > 0 and chat["prompt_tokens"] > plain["prompt_tokens"] - 1
    tuned = generate(server, model=name, adapter=f"{name}-lora", prompt="What is 2 plus 2?")
    merged = server.request("POST", f"/api/adapters/{name}-lora/merge", {"name": f"{name}-merged"}, timeout=300)
    assert merged.status == 201, merged.summary()
    from_merged = generate(server, model=f"{name}-merged", prompt="What is 2 plus 2?")
    if name not in ("bfloat16", "float16"):  # merging in half precision rounds the weights
        assert from_merged["text"] == tuned["text"], "merged weights generate what base + adapter did"


@pytest.mark.parametrize("shape", SHAPES)
def test_every_dataset_shape_trains(shape: str, server: BackendProcess) -> None:
    job = train(server, TINY_MODEL, shape, max_steps=2)
    assert job["status"] == "completed", job
    assert job["config"]["train_on"] == "completions" and job["runtime"]["examples"] == 4


def test_training_on_every_token_is_a_choice(server: BackendProcess) -> None:
    job = train(server, TINY_MODEL, "messages", max_steps=2, train_on="all")
    assert job["status"] == "completed" and job["config"]["train_on"] == "all"


def test_a_model_that_needs_remote_code_is_refused_and_its_code_never_runs(server: BackendProcess,
                                                                            tmp_path: Path) -> None:
    marker = tmp_path / "remote-code-ran"
    folder = write_remote_code_model(tmp_path / "custom", marker)
    response = server.request("POST", "/api/models", {"name": "custom", "path": str(folder)}, timeout=300)
    assert response.status == 409, response.summary()
    assert "trust_remote_code" in response.json()["error"]["message"]
    assert not marker.exists(), "code from the model folder ran"


def test_a_model_without_a_causal_head_is_refused_saying_so(server: BackendProcess, tmp_path: Path) -> None:
    response = server.request("POST", "/api/models", {"name": "encoder", "path": str(write_encoder_only(tmp_path / "b"))},
                              timeout=300)
    assert response.status == 409 and "no causal language-model head" in response.json()["error"]["message"]


def test_a_tokenizer_the_build_cannot_load_is_a_4xx_naming_what_is_missing(server: BackendProcess,
                                                                             tmp_path: Path) -> None:
    folder = write_family(tmp_path / "odd-tokenizer", FAMILIES["llama"])
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    response = server.request("POST", "/api/models", {"name": "odd-tokenizer", "path": str(folder)}, timeout=300)
    assert response.status == 409, response.summary()
    assert "tokenizer" in response.json()["error"]["message"]


def test_a_pickle_that_would_run_code_is_never_unpickled(server: BackendProcess, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    folder = write_pickle_checkpoint(tmp_path / "trap", malicious_marker=marker)
    assert server.request("POST", "/api/models", {"name": "trap", "path": str(folder)}, timeout=300).status == 201
    answer = server.request("POST", "/api/generate", {"model": "trap", "prompt": "hi", "max_new_tokens": 2}, timeout=300)
    assert answer.status == 409 and "weights-only" in answer.json()["error"]["message"], answer.summary()
    job = train(server, "trap", "messages")
    assert job["status"] == "failed" and "weights-only" in job["error"], job
    assert not marker.exists(), "a pickled object in the checkpoint ran"


def huge_model(folder: Path, parameters: int) -> Path:
    """A model folder whose weights file claims ``parameters`` float32 values (a sparse file: no disk used)."""
    write_family(folder, FAMILIES["llama"])
    weights = folder / "model.safetensors"
    header = json.dumps({"huge": {"dtype": "F32", "shape": [parameters], "data_offsets": [0, parameters * 4]}}).encode()
    with weights.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + parameters * 4)
    return folder


def test_a_model_too_big_for_the_memory_is_refused_before_loading(server: BackendProcess, tmp_path: Path) -> None:
    folder = huge_model(tmp_path / "huge", 1 << 40)  # 4 TiB of float32
    assert server.request("POST", "/api/models", {"name": "huge", "path": str(folder)}, timeout=300).status == 201
    answer = server.request("POST", "/api/generate", {"model": "huge", "prompt": "hi"}, timeout=300)
    assert answer.status == 507 and answer.json()["error"]["code"] == "insufficient_memory", answer.summary()
    on_cpu = server.request("POST", "/api/jobs", {"model": "huge", "dataset": "messages", "device": "cpu"})
    assert on_cpu.status == 507, on_cpu.summary()
    job = train(server, "huge", "messages")
    assert job["status"] == "failed" and "needs about" in job["error"], job
    assert server.request("GET", "/health", auth=False).status == 200


def test_a_device_the_machine_lacks_is_refused(server: BackendProcess) -> None:
    if server.request("GET", "/api/system", timeout=300).json()["ml"]["cuda_available"]:
        pytest.skip("this machine has CUDA")
    answer = server.request("POST", "/api/jobs", {"model": TINY_MODEL, "dataset": "messages", "device": "cuda"},
                            timeout=300)
    assert answer.status == 409 and answer.json()["error"]["field"] == "device", answer.summary()
    assert "cpu" in answer.json()["error"]["allowed"]
