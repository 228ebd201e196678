"""Training jobs: commands (create, cancel, resume), queries, and the record of what workers report.

Statuses move only through :func:`backend.services.job_states.move` (the table and the diagram are
there). A request is turned into a :class:`~backend.services.job_config.JobConfig` by
:func:`backend.services.job_config.resolve`; workers are launched, supervised and queued by
:mod:`backend.services.job_runner`. This module ties them together and is the supervisor's
:class:`~backend.services.job_runner.Recorder`.

No failure leaves a job ``running`` without a worker: the supervisor is started before anything else can
fail and always concludes the job; when progress cannot be recorded (a full disk), the worker is told to
stop and the job ends ``failed``, resumable from its last checkpoint; and a final state that cannot be
written is kept in memory, shown by every query and written once the database accepts it again. Each
row change is written together with the event that announces it.
"""

from __future__ import annotations

import builtins
import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from backend import faults
from backend.errors import Conflict, InsufficientMemory, NotFound
from backend.names import check_name, is_job_id, name_key
from backend.services import job_config
from backend.services.adapters import AdapterStore
from backend.services.data_dir import DataDir
from backend.services.datasets import DatasetStore
from backend.services.devices import DeviceFacts, choose_device, choose_dtype
from backend.services.events import JobChangeNotifier
from backend.services.job_runner import Scheduler, WorkerHandle, WorkerLauncher
from backend.services.job_states import ACTIVE, CANCELLABLE, RESUMABLE, JobStatus, check_edge, move
from backend.services.models import ModelRegistry
from backend.services.resources import BundledResources
from backend.services.store import Store
from backend.services.training import (
    CHECKPOINT,
    CHECKPOINT_STATE,
    MEMORY_MARGIN_BYTES,
    TRAINING_MEMORY_FACTOR,
    TrainingSpec,
)

log = logging.getLogger(__name__)


class JobManager:
    def __init__(self, store: Store, resources: BundledResources, models: ModelRegistry, datasets: DatasetStore,
                 adapters: AdapterStore, notifier: JobChangeNotifier, data_dir: DataDir, launcher: WorkerLauncher,
                 *, stop_timeout_s: float = 1.2, device_facts: Callable[[], DeviceFacts] | None = None):
        self.store, self.resources, self.models = store, resources, models
        self.datasets, self.adapters, self.notifier = datasets, adapters, notifier
        self.data_dir = data_dir
        self.scheduler = Scheduler(launcher, self, stop_timeout_s=stop_timeout_s, when_idle=self.schedule)
        self.device_facts = device_facts
        self._lock = threading.RLock()
        self._unrecorded: dict[str, tuple[JobStatus, dict[str, Any]]] = {}  # final states the database refused

    # -- startup / shutdown ------------------------------------------------------------------------
    def recover(self) -> builtins.list[str]:
        """Mark jobs left ``running`` by a previous server as ``interrupted``; start the queue. Only the
        data dir's one owner runs this (:func:`backend.services.data_dir.claim`)."""
        moved = [job["id"] for job in self.store.list_jobs() if job["status"] == JobStatus.RUNNING]
        for job_id in moved:
            self._finish(job_id, JobStatus.INTERRUPTED, finished_at=None,
                         error="the server stopped while this job was running; resume it")
        self.schedule()
        return moved

    def shutdown(self) -> None:
        self.scheduler.shutdown()

    # -- queries -----------------------------------------------------------------------------------
    def list(self) -> builtins.list[dict[str, Any]]:
        self._flush_unrecorded()
        return [self._overlay(job) for job in self.store.list_jobs()]

    def get(self, job_id: str) -> dict[str, Any]:
        self._flush_unrecorded()
        job = self.store.get_job(job_id) if is_job_id(job_id) else None
        if job is None:
            raise NotFound(f"job {job_id!r} not found", listed_at="/api/jobs")
        return self._overlay(job)

    def _overlay(self, job: dict[str, Any]) -> dict[str, Any]:
        pending = self._unrecorded.get(job["id"])
        return {**job, **pending[1], "status": str(pending[0])} if pending else job

    def _flush_unrecorded(self) -> None:
        """Write the final states the database refused earlier, now that it may accept them."""
        if not self._unrecorded:
            return
        with self._lock:
            for job_id, (status, fields) in list(self._unrecorded.items()):
                try:
                    move(self.store, job_id, status, event=_event_fields(fields), **fields)
                except sqlite3.Error:
                    return  # still refused: try again on the next query
                except (Conflict, NotFound):
                    pass  # moved by something else meanwhile: nothing left to write
                self._unrecorded.pop(job_id, None)
                log.info("recorded the final state of job %s (%s)", job_id, status)
                self.notifier.notify(job_id)

    def events_after(self, job_id: str, after_seq: int) -> builtins.list[dict[str, Any]]:
        return self.store.events_after(job_id, after_seq)

    def active_jobs_using(self, *, dataset: str | None = None, model: str | None = None) -> builtins.list[str]:
        return [job["id"] for job in self.list()
                if job["status"] in ACTIVE
                and (dataset is None or job["config"]["dataset"] == dataset)
                and (model is None or job["config"]["model"] == model)]

    # -- commands ----------------------------------------------------------------------------------
    def create(self, request: Mapping[str, Any]) -> dict[str, Any]:
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        config = self.validate(request, job_id)
        with self._lock:
            if not self.scheduler.accepting:
                raise Conflict("the server is shutting down; no new jobs are accepted")
            self.store.insert_job(job_id, config.to_dict(), config.total_steps)
        self.notifier.notify(job_id)
        self.schedule()
        return self.get(job_id)

    def validate(self, request: Mapping[str, Any], job_id: str) -> job_config.JobConfig:
        """Every reference checked and every default filled (InvalidInput naming the field), before anything
        is stored or started."""
        model = self.models.get(request["model"], field="model")
        dataset = self.datasets.get(request["dataset"], field="dataset")
        adapter_name = request.get("adapter_name")
        if adapter_name is not None:
            check_name(adapter_name, "adapter_name")
            self.adapters.check_new_id(adapter_name, field="adapter_name")
            key = name_key(adapter_name)
            if any(name_key(job["config"].get("adapter_name") or "") == key and job["status"] in ACTIVE
                   for job in self.list()):
                raise Conflict(f"an active job already writes adapter {adapter_name!r}", field="adapter_name")
        config = job_config.resolve(request, adapter_name=adapter_name or job_id, model=self.models.choice(model),
                                    dataset_id=dataset["id"], dataset_records=dataset["records"],
                                    defaults=self.resources.defaults["training"])
        self._check_device(config, model)
        return config

    def _check_device(self, config: job_config.JobConfig, model: dict[str, Any]) -> None:
        """A device (or dtype) the machine lacks, and a model too big for it, are refused now, not by a worker
        minutes later. Asking torch costs a probe, so only a job that names a GPU or a half dtype asks; with
        ``auto`` the worker picks, and checks the memory before it loads anything."""
        facts: DeviceFacts | None = None
        if config.device in ("cuda", "mps") or config.dtype in ("bfloat16", "float16"):
            facts = self.device_facts() if self.device_facts is not None else DeviceFacts()
            device = choose_device(config.device, facts)
            dtype = choose_dtype(config.dtype, device, facts)
        elif config.device == "cpu":
            device, dtype = "cpu", "float32" if config.dtype == "auto" else config.dtype
        else:
            return
        needed = int(self.models.summary(model).load_bytes(dtype) * TRAINING_MEMORY_FACTOR) + MEMORY_MARGIN_BYTES
        if device == "cpu":
            available: int | None = psutil.virtual_memory().available
        else:
            available = facts.cuda_memory_bytes if facts is not None and device == "cuda" else None
        if available is not None and needed > available:
            raise InsufficientMemory(
                f"training {model['id']} in {dtype} on {device} needs about {needed / 2**30:.1f} GiB and "
                f"{available / 2**30:.1f} GiB is available: free memory, or pick a smaller model, dtype or device")

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self.get(job_id)
            status = JobStatus(job["status"])
            if status is JobStatus.QUEUED:
                self._finish(job_id, JobStatus.CANCELLED, error=None)
                return self.get(job_id)
            running = self.scheduler.running
            if status not in CANCELLABLE or running is None or running.job_id != job_id:
                check_edge(job_id, status, JobStatus.CANCELLED)  # raises: not cancellable from here
                raise Conflict(f"job {job_id!r} is {status} but its worker is gone; it ends in a moment")
            self.scheduler.cancel(running)
        return self.get(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            if not self.scheduler.accepting:
                raise Conflict("the server is shutting down; no job can be resumed now")
            job = self.get(job_id)
            if JobStatus(job["status"]) not in RESUMABLE:
                check_edge(job_id, job["status"], JobStatus.QUEUED)
            move(self.store, job_id, JobStatus.QUEUED, event={"resume_from_step": job["checkpoint_step"] or 0},
                 error=None, finished_at=None)
        self.notifier.notify(job_id)
        self.schedule()
        return self.get(job_id)

    # -- the queue ---------------------------------------------------------------------------------
    def schedule(self) -> None:
        """Start the oldest queued job when none is running. Never raises: supervisors call it."""
        with self._lock:
            if self.scheduler.busy() or not self.scheduler.accepting:
                return
            try:
                queued = [job for job in self.list() if job["status"] == JobStatus.QUEUED]
            except sqlite3.Error:
                log.exception("could not read the queue; it is read again at the next change")
                return
            if not queued:
                return
            job = min(queued, key=lambda j: j["created_at"])
            try:
                self._start(job)
            except Exception as exc:  # e.g. the model folder vanished since the job was queued
                log.exception("could not start job %s", job["id"])
                self._finish(job["id"], JobStatus.FAILED, error=f"could not start: {type(exc).__name__}: {exc}")
                if job["id"] in self._unrecorded:
                    return  # the database refuses writes: starting the next would fail the same way
                self.schedule()

    def _start(self, job: dict[str, Any]) -> None:
        faults.check("job-start")
        config = job_config.JobConfig.from_dict(job["config"])
        self.data_dir.path("jobs", job["id"], field="job").mkdir(exist_ok=True)
        checkpoint = self.data_dir.path("jobs", job["id"], CHECKPOINT, field="job")
        self.adapters.path_for(config.adapter_name, field="adapter_name")  # no link planted where it will go
        spec = TrainingSpec(job_id=job["id"], config=config, model_path=self.models.get(config.model)["path"],
                            dataset_path=str(self.datasets.path_of(config.dataset)), data_dir=str(self.data_dir.root),
                            resume=(checkpoint / CHECKPOINT_STATE).is_file())

        def record_start(handle: WorkerHandle) -> None:
            move(self.store, job["id"], JobStatus.RUNNING,
                 event={"worker_pid": handle.process.pid, "resume": spec.resume},
                 started_at=time.time(), error=None, attempts=job["attempts"] + 1)
            self.notifier.notify(job["id"])

        self.scheduler.start(spec, record_start)

    # -- what workers report (the supervisor's Recorder) -------------------------------------------
    def record(self, handle: WorkerHandle, message: dict[str, Any]) -> None:
        job_id, kind = handle.job_id, message.get("type")
        if kind == "step":
            faults.check("monitor-write")
            self.store.transition(job_id, {"current_step": message["step"], "last_loss": message["loss"]},
                                  "step", message)
        elif kind == "checkpoint":
            self.store.transition(job_id, {"checkpoint_step": message["step"]}, "checkpoint", message)
        elif kind == "runtime":
            runtime = {key: value for key, value in message.items() if key != "type"}
            self.store.transition(job_id, {"runtime": runtime}, "runtime", runtime)
        elif kind == "status":
            self.store.append_event(job_id, "status", message)
        elif kind == "error":
            log.error("job %s failed in the worker:\n%s", job_id, message.get("traceback", ""))
            return
        else:
            return
        self.notifier.notify(job_id)

    def conclude(self, handle: WorkerHandle) -> None:
        """Record how the worker ended; always leaves no job running without a worker, and never raises."""
        job_id = handle.job_id
        try:
            status, error, fields = self._outcome(handle)
            self._finish(job_id, status, error=error, **fields)
            if status is JobStatus.CANCELLED:
                shutil.rmtree(self.data_dir.folder("jobs") / job_id / CHECKPOINT, ignore_errors=True)
        except Exception:
            log.exception("could not conclude job %s", job_id)
            self._finish(job_id, JobStatus.FAILED, error="could not record the result; see the log")

    def _outcome(self, handle: WorkerHandle) -> tuple[JobStatus, str | None, dict[str, Any]]:
        """(status, error, extra fields) from how the worker ended; the first that applies wins."""
        exitcode, outcome = handle.process.exitcode, handle.outcome
        if outcome is not None and outcome["status"] == "completed":
            job = self.get(handle.job_id)
            try:
                adapter = self.adapters.record(job["config"]["adapter_name"], job_id=handle.job_id,
                                               base_model=job["config"]["model"], final_loss=outcome["loss"])
            except Exception as exc:
                log.exception("could not record the adapter of job %s", handle.job_id)
                return (JobStatus.FAILED,
                        f"trained, but the adapter could not be recorded ({type(exc).__name__}: {exc})", {})
            return JobStatus.COMPLETED, None, {"adapter_id": adapter["id"]}
        if handle.cancel.is_set():
            return JobStatus.CANCELLED, None, {}
        if handle.record_error is not None:
            resume = "; resume it from its last checkpoint" if outcome is not None else "; resume it"
            return JobStatus.FAILED, handle.record_error + resume, {}
        if outcome is not None and outcome["status"] == "interrupted":
            return JobStatus.INTERRUPTED, "stopped with the server; resume it to continue", {}
        if handle.error is not None:
            return JobStatus.FAILED, handle.error, {}
        if exitcode is not None and exitcode < 0:
            return JobStatus.INTERRUPTED, f"worker killed by signal {-exitcode}; resume it", {}
        return JobStatus.FAILED, f"worker exited with code {exitcode} without a result", {}

    def _finish(self, job_id: str, status: JobStatus, *, error: str | None, **fields: Any) -> None:
        """Record a final state with its event; when the database refuses (a full disk), keep it in
        memory, where every query sees it, until it can be written."""
        changes = {"error": error, "finished_at": time.time(), **fields}
        with self._lock:
            try:
                move(self.store, job_id, status, event=_event_fields(changes), **changes)
                self._unrecorded.pop(job_id, None)
            except sqlite3.Error:
                log.exception("could not record that job %s is %s; kept in memory until it can be", job_id, status)
                self._unrecorded[job_id] = (status, changes)
        self.notifier.notify(job_id)


def _event_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """What a state event says beside the status: the error and the adapter, when there are."""
    return {key: value for key, value in fields.items() if key not in ("finished_at",) and value is not None}

