"""The job state machine under failures of the monitor, the worker and the database, without processes:
a fake worker (a real pipe, a stand-in process) and a store that refuses writes on demand.

Invariant: whatever fails, a job never stays ``running`` without a worker, and its final state is
visible at once and written as soon as the database accepts it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from backend.runtime_paths import current_layout
from backend.services.container import Services, build_services
from backend.services.jobs import RunningWorker
from backend.settings import Settings


class StandInProcess:
    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        self.pid = 4242

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False


class RefusingStore:
    """Wraps the store's writes: while ``full`` is set they fail as on a full disk."""

    def __init__(self, services: Services):
        self.full = False
        store = services.store
        for name in ("transition", "append_event", "update_job", "insert_job", "execute"):
            original = getattr(store, name)
            setattr(store, name, self._guard(original))

    def _guard(self, original: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.full:
                raise sqlite3.OperationalError("database or disk is full")
            return original(*args, **kwargs)
        return guarded


@pytest.fixture
def services(tmp_path: Path) -> Services:
    built = build_services(Settings(data_dir=tmp_path / "data", token="x" * 20), current_layout())
    built.jobs._start = lambda job: None  # type: ignore[method-assign]  # no real worker
    return built


def running_job(services: Services, *messages: dict[str, Any], exitcode: int | None = 0,
                outcome: dict[str, Any] | None = None) -> tuple[str, RunningWorker]:
    job = services.jobs.create({"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 3})
    services.store.update_job(job["id"], status="running")
    receiver, sender = multiprocessing.Pipe(duplex=False)
    context = multiprocessing.get_context("spawn")
    running = RunningWorker(job_id=job["id"], process=StandInProcess(exitcode), conn=receiver,  # type: ignore[arg-type]
                            cancel=context.Event(), stop=context.Event())
    services.jobs._running = running
    for message in messages:
        sender.send(message)
    if outcome is not None:
        sender.send({"type": "finished", **outcome})
    sender.close()
    return job["id"], running


def test_a_failing_progress_write_stops_the_worker_and_fails_the_job_resumably(services: Services) -> None:
    refusing = RefusingStore(services)
    job_id, running = running_job(services, {"type": "step", "step": 1, "loss": 2.0},
                                  {"type": "step", "step": 2, "loss": 1.9},
                                  outcome={"status": "interrupted", "step": 2, "loss": 1.9})
    refusing.full = True
    services.jobs._monitor(running)  # what the monitor thread runs
    assert running.stop.is_set(), "the worker was told to stop (and checkpoint)"
    job = services.jobs.get(job_id)
    assert job["status"] == "failed" and "could not record job progress" in job["error"]
    assert "resume it from its last checkpoint" in job["error"]
    assert services.jobs._running is None, "no job left running without a worker"
    assert services.store.get_job(job_id)["status"] == "running", "the database refused; memory holds the truth"

    refusing.full = False
    assert services.jobs.get(job_id)["status"] == "failed"
    assert services.store.get_job(job_id)["status"] == "failed", "written once the database accepted it"
    assert services.jobs.resume(job_id)["status"] == "queued"


def test_a_final_state_the_database_refuses_is_listed_and_ends_event_streams(services: Services) -> None:
    refusing = RefusingStore(services)
    job_id, running = running_job(services, exitcode=-9)
    refusing.full = True
    services.jobs._monitor(running)
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
def test_every_way_a_worker_ends_is_recorded(services: Services, outcome: dict | None, exitcode: int,
                                             messages: list, status: str, says: str) -> None:
    job_id, running = running_job(services, *messages, exitcode=exitcode, outcome=outcome)
    services.jobs._monitor(running)
    job = services.jobs.get(job_id)
    assert job["status"] == status and says in job["error"]
    assert services.store.get_job(job_id)["status"] == status


def test_a_cancelled_job_is_cancelled_even_when_the_worker_crashed(services: Services) -> None:
    job_id, running = running_job(services, exitcode=1)
    running.cancel.set()
    services.jobs._monitor(running)
    assert services.jobs.get(job_id)["status"] == "cancelled"


def test_a_job_that_cannot_start_fails_and_the_queue_goes_on(services: Services) -> None:
    calls: list[str] = []

    def start(job: dict[str, Any]) -> None:
        calls.append(job["id"])
        if len(calls) == 1:
            raise OSError("spawn failed")

    services.jobs._start = start  # type: ignore[method-assign]
    services.jobs._running = object()  # type: ignore[assignment]  # busy: both jobs wait in the queue
    first = services.jobs.create({"model": "tiny-llama", "dataset": "sample-instructions"})
    second = services.jobs.create({"model": "tiny-llama", "dataset": "sample-instructions"})
    services.jobs._running = None
    services.jobs._schedule()
    assert services.jobs.get(first["id"])["status"] == "failed"
    assert "could not start: OSError: spawn failed" in services.jobs.get(first["id"])["error"]
    assert calls == [first["id"], second["id"]]


def test_recovery_on_a_full_disk_still_shows_running_jobs_interrupted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", token="x" * 20)
    first = build_services(settings, current_layout())
    first.jobs._start = lambda job: None  # type: ignore[method-assign]
    job = first.jobs.create({"model": "tiny-llama", "dataset": "sample-instructions"})
    first.store.update_job(job["id"], status="running")
    first.close()

    second = build_services(settings, current_layout())
    refusing = RefusingStore(second)
    refusing.full = True
    second.jobs.recover()
    assert second.jobs.get(job["id"])["status"] == "interrupted"
    refusing.full = False
    assert second.jobs.get(job["id"])["status"] == "interrupted"
    assert second.store.get_job(job["id"])["status"] == "interrupted"


def test_the_monitor_keeps_reading_after_it_stopped_recording(services: Services) -> None:
    """Never stop reading the pipe: a worker whose messages are not read blocks on a full pipe."""
    refusing = RefusingStore(services)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    context = multiprocessing.get_context("spawn")
    job = services.jobs.create({"model": "tiny-llama", "dataset": "sample-instructions"})
    running = RunningWorker(job_id=job["id"], process=StandInProcess(0), conn=receiver,  # type: ignore[arg-type]
                            cancel=context.Event(), stop=context.Event())
    refusing.full = True

    def worker() -> None:
        for step in range(2000):  # far more than a pipe buffer holds
            sender.send({"type": "step", "step": step, "loss": 1.0, "padding": "x" * 200})
        sender.send({"type": "finished", "status": "interrupted", "step": 2000, "loss": 1.0})
        sender.close()

    thread = threading.Thread(target=worker)
    thread.start()
    services.jobs._monitor(running)
    thread.join(10)
    assert not thread.is_alive()
    assert running.outcome == {"type": "finished", "status": "interrupted", "step": 2000, "loss": 1.0}
