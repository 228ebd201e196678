"""The job state machine: the table itself, the one function that moves a job, and the job manager under
failures of the worker and the database, driven through an injected launcher (no process, nothing
patched: the supervisor and the queue run as in the server).

Invariant: whatever fails, a job never stays ``running`` without a worker, and its final state is
visible at once and written as soon as the database accepts it."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from backend.runtime_paths import current_layout
from backend.services.container import Services, build_services
from backend.services.job_states import (
    ACTIVE,
    RESUMABLE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    JobStatus,
    move,
)
from backend.services.store import Store
from backend.settings import Settings
from tests.support.fake_workers import FakeLauncher, ScriptedWorker

JOB = {"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 3}


# -- the table -----------------------------------------------------------------------------------------
def test_every_status_is_reachable_and_only_terminal_ones_end_a_stream() -> None:
    reachable = {JobStatus.QUEUED} | {target for _, target in TRANSITIONS}
    assert reachable == set(JobStatus)
    assert set(JobStatus) == ACTIVE | TERMINAL and not ACTIVE & TERMINAL
    assert {JobStatus.FAILED, JobStatus.INTERRUPTED} == RESUMABLE
    assert not any(source is JobStatus.COMPLETED for source, _ in TRANSITIONS), "completed is final"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.sqlite3")


@pytest.mark.parametrize(("source", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_move_allows_exactly_the_edges_of_the_table(store: Store, source: JobStatus, target: JobStatus) -> None:
    store.insert_job("job-000000000001", {"model": "m"}, 3)
    store.update_job("job-000000000001", status=str(source))
    before = store.events_after("job-000000000001", 0)
    if (source, target) in TRANSITIONS:
        move(store, "job-000000000001", target, error="why")
        job = store.get_job("job-000000000001")
        assert job is not None and job["status"] == target and job["error"] == "why"
        event = store.events_after("job-000000000001", 0)[-1]
        assert event["type"] == "state" and event["data"]["status"] == target, "the row and its event, together"
    else:
        with pytest.raises(IllegalTransition, match=f"is {source}"):
            move(store, "job-000000000001", target)
        job = store.get_job("job-000000000001")
        assert job is not None and job["status"] == source, "a refused move changes nothing"
        assert store.events_after("job-000000000001", 0) == before


def test_move_checks_the_status_the_database_holds_not_a_stale_read(store: Store) -> None:
    """Two movers that both read ``running``: the second one's edge is checked against what the first wrote."""
    store.insert_job("job-000000000002", {"model": "m"}, 3)
    store.update_job("job-000000000002", status="running")
    move(store, "job-000000000002", JobStatus.INTERRUPTED)
    with pytest.raises(IllegalTransition):
        move(store, "job-000000000002", JobStatus.COMPLETED)


# -- the manager, through an injected launcher ------------------------------------------------------------
class RefusingStore:
    """The store's writes fail as on a full disk while ``full`` is set."""

    def __init__(self, services: Services):
        self.full = False
        store = services.store
        for name in ("transition", "append_event", "update_job", "insert_job", "execute", "move_job"):
            setattr(store, name, self._guard(getattr(store, name)))

    def _guard(self, original: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.full:
                raise sqlite3.OperationalError("database or disk is full")
            return original(*args, **kwargs)
        return guarded


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def services(tmp_path: Path, launcher: FakeLauncher) -> Services:
    return build_services(Settings(data_dir=tmp_path / "data", token="x" * 20), current_layout(), launcher=launcher)


def running_job(services: Services, launcher: FakeLauncher) -> tuple[str, ScriptedWorker]:
    job = services.jobs.create(JOB)
    worker = launcher.worker()
    assert services.jobs.get(job["id"])["status"] == "running"
    return job["id"], worker


def test_a_failing_progress_write_stops_the_worker_and_fails_the_job_resumably(services: Services,
                                                                                launcher: FakeLauncher) -> None:
    refusing = RefusingStore(services)
    job_id, worker = running_job(services, launcher)
    worker.send({"type": "step", "step": 1, "loss": 2.0})
    refusing.full = True
    worker.send({"type": "step", "step": 2, "loss": 1.9})
    assert worker.handle.stop.wait(5), "the worker was told to stop (and checkpoint)"
    worker.end(0, outcome={"status": "interrupted", "step": 2, "loss": 1.9})
    job = services.jobs.get(job_id)
    assert job["status"] == "failed" and "could not record job progress" in job["error"]
    assert "resume it from its last checkpoint" in job["error"]
    assert not services.jobs.scheduler.busy(), "no job left running without a worker"
    assert services.store.get_job(job_id)["status"] == "running", "the database refused; memory holds the truth"

    refusing.full = False
    assert services.jobs.get(job_id)["status"] == "failed"
    assert services.store.get_job(job_id)["status"] == "failed", "written once the database accepted it"
    assert services.jobs.resume(job_id)["status"] in ("queued", "running")


def test_a_final_state_the_database_refuses_is_listed(services: Services, launcher: FakeLauncher) -> None:
    refusing = RefusingStore(services)
    job_id, worker = running_job(services, launcher)
    refusing.full = True
    worker.end(-9)
    listed = {job["id"]: job for job in services.jobs.list()}
    assert listed[job_id]["status"] == "interrupted" and "signal 9" in listed[job_id]["error"]
    assert services.jobs.active_jobs_using(model="tiny-llama") == []


@pytest.mark.parametrize(("outcome", "exitcode", "messages", "status", "says"), [
    ({"status": "completed", "step": 3, "loss": 1.0}, 0, [], "failed", "adapter could not be recorded"),
    (None, 0, [{"type": "error", "message": "FloatingPointError: loss became nan"}], "failed", "loss became nan"),
    (None, -9, [], "interrupted", "signal 9"),
    (None, 1, [], "failed", "worker exited with code 1 without a result"),
    ({"status": "interrupted", "step": 2, "loss": 1.0}, 0, [], "interrupted", "resume it"),
])
def test_every_way_a_worker_ends_is_recorded(services: Services, launcher: FakeLauncher, outcome: dict | None,
                                             exitcode: int, messages: list, status: str, says: str) -> None:
    job_id, worker = running_job(services, launcher)
    worker.end(exitcode, *messages, outcome=outcome)
    job = services.jobs.get(job_id)
    assert job["status"] == status and says in job["error"]
    assert services.store.get_job(job_id)["status"] == status


def test_runtime_steps_and_checkpoints_are_recorded_with_their_events(services: Services,
                                                                      launcher: FakeLauncher) -> None:
    job_id, worker = running_job(services, launcher)
    worker.send({"type": "runtime", "device": "cpu", "dtype": "float32", "target_modules": ["q_proj"]},
                {"type": "step", "step": 1, "loss": 2.5}, {"type": "checkpoint", "step": 1})
    worker.end(-15)
    job = services.jobs.get(job_id)
    assert job["runtime"] == {"device": "cpu", "dtype": "float32", "target_modules": ["q_proj"]}
    assert job["current_step"] == 1 and job["checkpoint_step"] == 1 and job["last_loss"] == 2.5
    kinds = [event["type"] for event in services.jobs.events_after(job_id, 0)]
    assert kinds == ["state", "state", "runtime", "step", "checkpoint", "state"]


def test_a_cancelled_job_is_cancelled_even_when_the_worker_crashed(services: Services, launcher: FakeLauncher) -> None:
    job_id, worker = running_job(services, launcher)
    services.jobs.cancel(job_id)
    assert worker.handle.cancel.is_set()
    worker.end(1)
    assert services.jobs.get(job_id)["status"] == "cancelled"


def test_a_job_that_cannot_start_fails_and_the_queue_goes_on(services: Services, launcher: FakeLauncher) -> None:
    launcher.failures.append(OSError("spawn failed"))
    first = services.jobs.create(JOB)
    second = services.jobs.create(JOB)
    assert services.jobs.get(first["id"])["status"] == "failed"
    assert "could not start: OSError: spawn failed" in services.jobs.get(first["id"])["error"]
    assert services.jobs.get(second["id"])["status"] == "running"
    assert [w.spec.job_id for w in launcher.launched] == [second["id"]]


def test_jobs_run_one_at_a_time_in_order(services: Services, launcher: FakeLauncher) -> None:
    first, second = services.jobs.create(JOB), services.jobs.create(JOB)
    assert services.jobs.get(second["id"])["status"] == "queued"
    launcher.worker(0).end(0, outcome={"status": "interrupted", "step": 1, "loss": 1.0})
    worker = launcher.worker(1)
    assert worker.spec.job_id == second["id"] and services.jobs.get(first["id"])["status"] == "interrupted"


def test_recovery_on_a_full_disk_still_shows_running_jobs_interrupted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", token="x" * 20)
    launcher = FakeLauncher()
    first = build_services(settings, current_layout(), launcher=launcher)
    job = first.jobs.create(JOB)
    assert first.jobs.get(job["id"])["status"] == "running"
    first.store.close()  # the server died: its job is still running in the database

    second = build_services(settings, current_layout(), launcher=FakeLauncher())
    refusing = RefusingStore(second)
    refusing.full = True
    second.jobs.recover()
    assert second.jobs.get(job["id"])["status"] == "interrupted"
    refusing.full = False
    assert second.jobs.get(job["id"])["status"] == "interrupted"
    assert second.store.get_job(job["id"])["status"] == "interrupted"


def test_the_supervisor_keeps_reading_after_it_stopped_recording(services: Services, launcher: FakeLauncher) -> None:
    """Never stop reading the pipe: a worker whose messages are not read blocks on a full pipe."""
    refusing = RefusingStore(services)
    _, worker = running_job(services, launcher)
    refusing.full = True

    def write() -> None:
        for step in range(2000):  # far more than a pipe buffer holds
            worker.sender.send({"type": "step", "step": step, "loss": 1.0, "padding": "x" * 200})
        worker.end(0, outcome={"status": "interrupted", "step": 2000, "loss": 1.0}, wait=False)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the worker blocked on a pipe nobody read"
    assert worker.handle.finished.wait(10)
    assert worker.handle.outcome == {"type": "finished", "status": "interrupted", "step": 2000, "loss": 1.0}
