"""Injected faults and a full disk: a job always ends (never ``running`` without a worker), its event
stream ends, the queue goes on, the server keeps answering, and nothing is lost.

Faults come in through ``PEFT_ENGINE_FAULTS`` (backend/faults.py), which reaches the built artifact and
its workers alike. The full disk is real: the data dir on a 24 MiB tmpfs, filled while a job trains
(mounting needs root, which CI has)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend_client.process_tree import pid_alive
from tests.support import RunningBackends, wait_for
from tests.support.disks import fill, small_disk
from tests.support.jobs_api import create_job, job, wait_status, wait_steps, worker_pid

FINAL = ("completed", "cancelled", "failed", "interrupted")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

FAULTS = {
    # point: (the job's status, what its error says)
    "worker-start": ("failed", "worker exited with code 1 without a result"),
    "worker-step": ("failed", "InjectedFault: injected fault: worker-step"),
    "monitor-write": ("failed", "could not record job progress"),
    "job-start": ("failed", "could not start: InjectedFault"),
}


@pytest.mark.parametrize("point", sorted(FAULTS))
def test_an_injected_fault_ends_the_job_and_nothing_is_stuck(point: str, backends: RunningBackends) -> None:
    status, says = FAULTS[point]
    _, server = backends.start(env={"PEFT_ENGINE_FAULTS": point})
    first = create_job(server, max_steps=50, checkpoint_every=5)
    second = create_job(server, max_steps=50, checkpoint_every=5)
    workers = []
    for created in (first, second):  # the queue goes on after a failure
        ended = wait_status(server, created["id"], *FINAL, timeout=180)
        assert ended["status"] == status and says in ended["error"], ended
        events = server.stream_events(f"/api/jobs/{created['id']}/events", timeout=30)  # ends by itself
        assert events[-1]["data"]["status"] == status
        workers += [e["data"]["worker_pid"] for e in events if e["data"].get("status") == "running"]
        assert server.request("POST", f"/api/jobs/{created['id']}/cancel").status == 409
    assert server.request("GET", "/health", auth=False).status == 200
    assert len(workers) == (0 if point == "job-start" else 2)
    wait_for(lambda: not any(pid_alive(pid) for pid in workers), 10, what="every worker to exit")


def test_resume_after_a_recording_failure_continues_from_the_checkpoint(backends: RunningBackends,
                                                                          tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _, faulty = backends.start(data_dir, env={"PEFT_ENGINE_FAULTS": "monitor-write"})
    created = create_job(faulty, max_steps=12, checkpoint_every=0)
    ended = wait_status(faulty, created["id"], *FINAL, timeout=180)
    assert ended["status"] == "failed" and "resume it from its last checkpoint" in ended["error"]
    faulty.stop()
    _, healthy = backends.start(data_dir)
    assert healthy.request("POST", f"/api/jobs/{created['id']}/resume").status == 202
    done = wait_status(healthy, created["id"], *FINAL, timeout=180)
    assert done["status"] == "completed" and done["current_step"] == 12


def test_an_unknown_fault_point_is_refused_at_start(backends: RunningBackends) -> None:
    with pytest.raises(Exception, match="unknown fault point"):
        backends.start(env={"PEFT_ENGINE_FAULTS": "everything"})


@pytest.mark.skipif(not IS_ROOT, reason="mounting a small file system needs root (CI runs as root)")
def test_a_full_disk_fails_the_job_answers_507_and_loses_nothing(backends: RunningBackends) -> None:
    with small_disk(24) as disk:
        _, server = backends.start(disk / "data")
        created = create_job(server, max_steps=100_000, checkpoint_every=5)
        wait_steps(server, created["id"], 3)
        worker = worker_pid(server, created["id"])
        filler = fill(disk)

        ended = wait_status(server, created["id"], *FINAL, timeout=60)
        assert ended["status"] == "failed" and "full" in ended["error"], ended
        wait_for(lambda: not pid_alive(worker), 10, what="the worker to exit")
        events = server.stream_events(f"/api/jobs/{created['id']}/events", timeout=30)
        assert events, "the stream ends by itself"
        upload = server.request("POST", "/api/datasets?name=later", raw_body=b'{"text": "x"}\n' * 2000)
        assert upload.status == 507 and upload.json()["error"]["code"] == "insufficient_storage"
        assert "free some space" in upload.json()["error"]["message"]
        second = server.request("POST", "/api/jobs", {"model": "tiny-llama", "dataset": "sample-instructions"})
        if second.status == 202:  # SQLite found room in its write-ahead log: the job must still end
            assert wait_status(server, second.json()["id"], *FINAL, timeout=60)["status"] == "failed"
        else:
            assert second.status == 507, second.body
        assert server.request("GET", "/health", auth=False).status == 200

        filler.unlink()  # the user frees space: the failure is written, and the job resumes
        assert job(server, created["id"])["status"] == "failed"
        resumed = server.request("POST", f"/api/jobs/{created['id']}/resume")
        assert resumed.status == 202, resumed.body
        wait_steps(server, created["id"], ended["current_step"] + 2)
        assert server.request("POST", f"/api/jobs/{created['id']}/cancel").status == 202
        assert wait_status(server, created["id"], *FINAL, timeout=30)["status"] == "cancelled"
        datasets = server.request("GET", "/api/datasets").json()
        assert [d["id"] for d in datasets] == ["sample-instructions"], "a failed upload leaves nothing behind"
        assert not [p for p in (disk / "data" / "datasets").iterdir() if p.name.startswith(".upload-")]
