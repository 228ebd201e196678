"""The real server from source, driven over HTTP through the service manager: real tiny-model training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from backend.runtime_paths import current_layout
from backend.service_manager import BackendProcess, LaunchSpec, ServiceManager
from backend.services.lifecycle import process_alive
from backend.services.resources import BundledResources
from tests.conftest import SAMPLE_DATASET, TINY_MODEL, RunningBackends, wait_for

pytestmark = pytest.mark.integration


def upload_sample(process: BackendProcess, name: str, lines: int) -> dict:
    sample = BundledResources(current_layout().resources).sample_dataset.read_bytes()
    body = b"".join(sample.splitlines(keepends=True)[:lines])
    response = process.request("POST", f"/api/datasets?name={name}", raw_body=body,
                               headers={"Content-Type": "application/x-ndjson"})
    assert response.status == 201, response.body
    return response.json()


def create_job(process: BackendProcess, **fields: object) -> dict:
    body = {"model": TINY_MODEL, "dataset": SAMPLE_DATASET, **fields}
    response = process.request("POST", "/api/jobs", body)
    assert response.status == 202, response.body
    return response.json()


def job(process: BackendProcess, job_id: str) -> dict:
    return process.request("GET", f"/api/jobs/{job_id}").json()


def wait_status(process: BackendProcess, job_id: str, *statuses: str, timeout: float = 120.0) -> dict:
    return wait_for(lambda: (j := job(process, job_id))["status"] in statuses and j, timeout,
                    what=f"job {job_id} to become {statuses}")


def wait_steps(process: BackendProcess, job_id: str, steps: int) -> dict:
    return wait_for(lambda: (j := job(process, job_id))["current_step"] >= steps and j, 120,
                    what=f"job {job_id} to reach step {steps}")


def worker_pids(process: BackendProcess) -> list[int]:
    """Training workers (spawned children), not multiprocessing's resource tracker."""
    pids = []
    for child in process.process_tree():
        try:
            if child.pid != process.popen.pid and "spawn_main" in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


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

    finished = job(server, created["id"])
    assert finished["status"] == "completed" and finished["last_loss"] == pytest.approx(steps[-1]["loss"])
    adapter = server.request("GET", "/api/adapters/mini-adapter").json()
    assert adapter["base_model"] == TINY_MODEL
    assert (Path(adapter["path"]) / "adapter_config.json").is_file()

    prompt = {"model": TINY_MODEL, "prompt": "What is 3 plus 4?", "max_new_tokens": 8}
    plain = server.request("POST", "/api/generate", {**prompt})
    tuned = server.request("POST", "/api/generate", {**prompt, "adapter": "mini-adapter"})
    assert plain.status == tuned.status == 200, tuned.body
    assert tuned.json()["new_tokens"] > 0
    streamed = server.request("POST", "/api/generate", {**prompt, "adapter": "mini-adapter", "stream": True})
    from backend.service_manager import parse_sse

    stream_events = parse_sse(streamed.body.decode())
    assert stream_events[-1]["event"] == "done"
    assert stream_events[-1]["data"]["text"] == tuned.json()["text"], "greedy decoding is deterministic"

    merged = server.request("POST", "/api/adapters/mini-adapter/merge", {"name": "tiny-merged"})
    assert merged.status == 201, merged.body
    assert "tiny-merged" in [m["id"] for m in server.request("GET", "/api/models").json()]
    from_merged = server.request("POST", "/api/generate", {**prompt, "model": "tiny-merged"})
    assert from_merged.status == 200
    assert from_merged.json()["text"] == tuned.json()["text"], "merged weights generate what base+adapter did"

    system = server.request("GET", "/api/system").json()
    assert system["ml"]["torch"].startswith("2.") and system["ml"]["cuda_available"] in (True, False)


def test_cancel_running_job(backends: RunningBackends) -> None:
    _, server = backends.start()
    created = create_job(server, max_steps=100_000, checkpoint_every=0)
    wait_steps(server, created["id"], 2)
    response = server.request("POST", f"/api/jobs/{created['id']}/cancel")
    assert response.status == 202
    cancelled = wait_status(server, created["id"], "cancelled", timeout=10)
    assert cancelled["adapter_id"] is None
    assert server.request("POST", f"/api/jobs/{created['id']}/cancel").status == 409
    wait_for(lambda: not worker_pids(server), 10, what="the worker to exit")


def test_killed_worker_marks_job_and_server_keeps_serving(backends: RunningBackends) -> None:
    _, server = backends.start()
    created = create_job(server, max_steps=60, checkpoint_every=5, adapter_name="survivor")
    wait_steps(server, created["id"], 6)
    (worker,) = worker_pids(server)
    os.kill(worker, signal.SIGKILL)
    interrupted = wait_status(server, created["id"], "interrupted", "failed", timeout=15)
    assert "signal 9" in interrupted["error"]
    assert interrupted["checkpoint_step"] >= 5
    assert server.request("GET", "/health", auth=False).status == 200
    assert server.request("GET", "/api/jobs").status == 200

    resumed = server.request("POST", f"/api/jobs/{created['id']}/resume")
    assert resumed.status == 202, resumed.body
    done = wait_status(server, created["id"], "completed", timeout=120)
    assert done["attempts"] == 2 and done["current_step"] == 60
    events = server.stream_events(f"/api/jobs/{created['id']}/events")
    resumed_at = [e["data"]["step"] for e in events if e["data"].get("phase") == "resumed"]
    assert resumed_at and resumed_at[0] >= 5, "the second attempt continued from the checkpoint"


def test_server_killed_then_restarted_marks_job_interrupted(backends: RunningBackends, tmp_path: Path) -> None:
    data_dir = tmp_path / "shared-data"
    _, first = backends.start(data_dir)
    created = create_job(first, max_steps=100_000, checkpoint_every=0)
    wait_steps(first, created["id"], 2)
    (worker,) = worker_pids(first)
    os.kill(first.popen.pid, signal.SIGKILL)
    first.popen.wait(10)
    wait_for(lambda: not process_alive(worker), 10, what="the orphaned worker to exit by itself")

    _, second = backends.start(data_dir)
    restarted = job(second, created["id"])
    assert restarted["status"] == "interrupted" and "resume" in restarted["error"]
    assert second.request("POST", f"/api/jobs/{created['id']}/resume").status == 202
    wait_steps(second, created["id"], 1)
    assert second.request("POST", f"/api/jobs/{created['id']}/cancel").status == 202
    wait_status(second, created["id"], "cancelled", timeout=10)


def test_sigterm_stops_within_two_seconds_with_checkpoint(backends: RunningBackends, tmp_path: Path) -> None:
    data_dir = tmp_path / "sigterm-data"
    _, server = backends.start(data_dir)
    created = create_job(server, max_steps=100_000, checkpoint_every=0)
    wait_steps(server, created["id"], 3)
    tree = server.process_tree()
    started = time.perf_counter()
    server.popen.send_signal(signal.SIGTERM)
    server.popen.wait(5)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"graceful shutdown took {elapsed:.2f}s"
    wait_for(lambda: not any(process_alive(p.pid) for p in tree), 3, what="every process of the tree to exit")

    _, again = backends.start(data_dir)
    state = job(again, created["id"])
    assert state["status"] == "interrupted"
    assert state["checkpoint_step"] and state["checkpoint_step"] >= 3, "shutdown saved a checkpoint"


def test_parent_death_stops_backend(tmp_path: Path) -> None:
    """``--parent-pid``: when the desktop app dies, the backend exits (and takes its worker along)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    spec = LaunchSpec.source(tmp_path / "data", extra_args=("--parent-pid", str(parent.pid)))
    process = BackendProcess(spec)
    try:
        process.wait_ready()
        parent.kill()
        parent.wait()
        process.popen.wait(10)
        assert process.popen.returncode == 0
    finally:
        report = process.stop(timeout=2)
        parent.kill()
    assert not report.leftover_pids


def test_service_manager_restarts_a_crashed_backend(tmp_path: Path) -> None:
    events: list[str] = []
    manager = ServiceManager(LaunchSpec.source(tmp_path / "data"), max_restarts=2, backoff_initial_s=0.1,
                             on_event=lambda kind, data: events.append(kind))
    first = manager.start()
    try:
        os.kill(first.popen.pid, signal.SIGKILL)
        second = manager.wait_for_restart(first, timeout=60)
        assert second.ready is not None and second.ready.pid != first.ready.pid
        assert second.request("GET", "/health", auth=False).status == 200
        assert events[:3] == ["ready", "exited", "restarting"]
    finally:
        report = manager.stop()
    assert report is not None and report.graceful and not report.leftover_pids


def test_bad_token_and_host_rejected(backends: RunningBackends) -> None:
    _, server = backends.start()
    assert server.request("GET", "/api/jobs", auth=False).status == 401
    assert server.request("GET", "/api/jobs", auth=False, headers={"Authorization": "Bearer nope"}).status == 401
    assert server.request("GET", "/health", auth=False, headers={"Host": "evil.example"}).status == 400


def test_idle_server_has_no_ml_stack_and_released_its_startup_memory(backends: RunningBackends) -> None:
    """The heavy imports stay out of the server process, and (Linux) the clean pages that only startup
    used are given back shortly after the ready line."""
    _, server = backends.start()
    info = server.request("GET", "/api/system/process").json()
    assert info["pid"] == server.popen.pid
    assert "backend.main" in info["modules"]
    assert not {"torch", "transformers", "peft"} & set(info["modules"])
    if sys.platform.startswith("linux"):
        released = wait_for(lambda: server.request("GET", "/api/system/process").json()["startup_release"], 10,
                            what="the startup memory release")
        assert released["mappings"] > 0 and released["file_kib"] > 0
        assert released["rss_after_kib"] < released["rss_before_kib"]
        assert info["memory_bytes"]["pss"] > 0
