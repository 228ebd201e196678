"""Training jobs end to end: real tiny-model training, SSE with Last-Event-ID, cancel, a killed worker,
a killed server, resume from the checkpoint."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backend_client.http import parse_sse
from backend_client.process_tree import pid_alive
from tests.support import TINY_MODEL, RunningBackends, wait_for
from tests.support.jobs_api import create_job, job, upload_sample, wait_status, wait_steps, worker_pid


def test_train_stream_generate_merge(backends: RunningBackends) -> None:
    _, server = backends.start()
    dataset = upload_sample(server, "mini", 48)
    assert dataset["records"] == 48
    created = create_job(server, dataset="mini", adapter_name="mini-adapter", max_steps=12,
                         learning_rate=0.02, batch_size=8, checkpoint_every=5)

    events = server.stream_events(f"/api/jobs/{created['id']}/events")
    steps = [e["data"] for e in events if e["event"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, 13))
    assert all({"loss", "learning_rate", "eta_seconds", "epoch"} <= s.keys() for s in steps)
    assert steps[-1]["loss"] < steps[0]["loss"], "training at lr 0.02 must lower the loss"
    assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)
    assert events[-1]["event"] == "state" and events[-1]["data"]["status"] == "completed"
    assert any(e["event"] == "checkpoint" for e in events)

    # Resuming the stream after an event id replays only what came later.
    middle = int(events[len(events) // 2]["id"])
    replay = server.stream_events(f"/api/jobs/{created['id']}/events", last_event_id=middle)
    assert [int(e["id"]) for e in replay] == [int(e["id"]) for e in events if int(e["id"]) > middle]
    assert server.stream_events(f"/api/jobs/{created['id']}/events", last_event_id="junk") == events

    finished = job(server, created["id"])
    assert finished["status"] == "completed" and finished["last_loss"] == pytest.approx(steps[-1]["loss"])
    adapter = server.request("GET", "/api/adapters/mini-adapter").json()
    assert adapter["base_model"] == TINY_MODEL
    assert (Path(adapter["path"]) / "adapter_config.json").is_file()
    assert server.request("POST", f"/api/jobs/{created['id']}/resume").status == 409, "completed is final"

    prompt = {"model": TINY_MODEL, "prompt": "What is 3 plus 4?", "max_new_tokens": 8}
    plain = server.request("POST", "/api/generate", {**prompt})
    tuned = server.request("POST", "/api/generate", {**prompt, "adapter": "mini-adapter"})
    assert plain.status == tuned.status == 200, tuned.body
    assert tuned.json()["new_tokens"] > 0
    streamed = server.request("POST", "/api/generate", {**prompt, "adapter": "mini-adapter", "stream": True})
    stream_events = parse_sse(streamed.body.decode())
    assert stream_events[-1]["event"] == "done"
    assert stream_events[-1]["data"]["text"] == tuned.json()["text"], "greedy decoding is deterministic"

    merged = server.request("POST", "/api/adapters/mini-adapter/merge", {"name": "tiny-merged"})
    assert merged.status == 201, merged.body
    assert server.request("POST", "/api/adapters/mini-adapter/merge", {"name": "tiny-merged"}).status == 409
    assert "tiny-merged" in [m["id"] for m in server.request("GET", "/api/models").json()]
    from_merged = server.request("POST", "/api/generate", {**prompt, "model": "tiny-merged"})
    assert from_merged.status == 200
    assert from_merged.json()["text"] == tuned.json()["text"], "merged weights generate what base+adapter did"

    assert server.request("DELETE", "/api/adapters/mini-adapter").status == 204
    assert not Path(adapter["path"]).exists()
    assert server.request("DELETE", "/api/models/tiny-merged").status == 204


def test_cancel_running_job(backends: RunningBackends) -> None:
    _, server = backends.start()
    created = create_job(server, max_steps=100_000, checkpoint_every=0)
    wait_steps(server, created["id"], 2)
    worker = worker_pid(server, created["id"])
    response = server.request("POST", f"/api/jobs/{created['id']}/cancel")
    assert response.status == 202
    cancelled = wait_status(server, created["id"], "cancelled", timeout=10)
    assert cancelled["adapter_id"] is None
    assert server.request("POST", f"/api/jobs/{created['id']}/cancel").status == 409
    wait_for(lambda: not pid_alive(worker), 10, what="the worker to exit")


def test_queued_job_waits_then_cancels(backends: RunningBackends) -> None:
    _, server = backends.start()
    first = create_job(server, max_steps=100_000, checkpoint_every=0)
    second = create_job(server, max_steps=2)
    assert job(server, second["id"])["status"] == "queued"
    assert server.request("POST", f"/api/jobs/{second['id']}/cancel").status == 202
    assert job(server, second["id"])["status"] == "cancelled"
    assert server.request("POST", f"/api/jobs/{first['id']}/cancel").status == 202
    wait_status(server, first["id"], "cancelled", timeout=30)


def test_killed_worker_marks_job_and_server_keeps_serving(backends: RunningBackends) -> None:
    _, server = backends.start()
    created = create_job(server, max_steps=60, checkpoint_every=5, adapter_name="survivor")
    wait_steps(server, created["id"], 6)
    os.kill(worker_pid(server, created["id"]), signal.SIGKILL)
    interrupted = wait_status(server, created["id"], "interrupted", "failed", timeout=15)
    assert "signal 9" in interrupted["error"]
    assert interrupted["checkpoint_step"] >= 5
    assert server.request("GET", "/health", auth=False).status == 200
    assert server.request("GET", "/api/jobs").status == 200

    resumed = server.request("POST", f"/api/jobs/{created['id']}/resume")
    assert resumed.status == 202, resumed.body
    done = wait_status(server, created["id"], "completed", timeout=180)
    assert done["attempts"] == 2 and done["current_step"] == 60
    events = server.stream_events(f"/api/jobs/{created['id']}/events")
    resumed_at = [e["data"]["step"] for e in events if e["data"].get("phase") == "resumed"]
    assert resumed_at and resumed_at[0] >= 5, "the second attempt continued from the checkpoint"


def test_server_killed_then_restarted_marks_job_interrupted(backends: RunningBackends, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared-data"
    _, first = backends.start(data_dir)
    created = create_job(first, max_steps=100_000, checkpoint_every=0)
    wait_steps(first, created["id"], 2)
    worker = worker_pid(first, created["id"])
    os.kill(first.server_pid, signal.SIGKILL)
    first.popen.wait(10)
    wait_for(lambda: not pid_alive(worker), 10, what="the orphaned worker to exit by itself")

    _, second = backends.start(data_dir)
    restarted = job(second, created["id"])
    assert restarted["status"] == "interrupted" and "resume" in restarted["error"]
    assert second.request("POST", f"/api/jobs/{created['id']}/resume").status == 202
    wait_steps(second, created["id"], 1)
    assert second.request("POST", f"/api/jobs/{created['id']}/cancel").status == 202
    wait_status(second, created["id"], "cancelled", timeout=10)
