"""Training jobs: validation, a one-at-a-time queue, worker processes, and their recorded progress.

State machine (persisted in SQLite):

    queued ──▶ running ──▶ completed
      │          ├──────▶ cancelled      (cancel: the worker is told, then terminated if slow)
      │          ├──────▶ failed         (training raised; the error is recorded)
      │          └──────▶ interrupted    (server shutdown with a checkpoint, worker killed, or a
      └──▶ cancelled                      server that died: found `running` at the next start)
    interrupted / failed ──resume──▶ queued   (continues from the last checkpoint when there is one)

Each worker is a ``multiprocessing`` spawn child (the same program, frozen or not). One monitor thread
per worker turns what it reports into job events and row updates, and notices when it dies.

No failure leaves a job ``running`` without a worker: the monitor is started before anything else can
fail and always concludes the job; when progress cannot be recorded (a full disk), the worker is told
to stop and the job ends ``failed``, resumable from its last checkpoint; and a final state that cannot
be written is kept in memory, shown by every query and written once the database accepts it again.
Each row change is written together with the event that announces it (``Store.transition``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from backend import faults
from backend.errors import Conflict, InvalidInput, NotFound
from backend.names import check_name, path_inside
from backend.services.adapters import AdapterStore
from backend.services.datasets import DatasetStore
from backend.services.events import JobChangeNotifier
from backend.services.models import ModelRegistry
from backend.services.resources import BundledResources
from backend.services.store import Store
from backend.services.training import TrainingSpec, steps_for
from backend.services.worker import worker_main

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
TERMINAL = ("completed", "cancelled", "failed", "interrupted")
RESUMABLE = ("interrupted", "failed")


@dataclass
class RunningWorker:
    job_id: str
    process: multiprocessing.process.BaseProcess
    conn: Connection
    cancel: Any
    stop: Any
    monitor: threading.Thread | None = None
    outcome: dict[str, Any] | None = None
    error: str | None = None  # what the worker reported when training raised
    record_error: str | None = None  # what the server failed to record (the job is stopped for it)
    finished: threading.Event = field(default_factory=threading.Event)


class JobManager:
    def __init__(
        self,
        store: Store,
        resources: BundledResources,
        models: ModelRegistry,
        datasets: DatasetStore,
        adapters: AdapterStore,
        notifier: JobChangeNotifier,
        jobs_folder: Path,
        stop_timeout_s: float = 1.2,
        release_worker_memory: bool = False,
    ):
        self.store = store
        self.release_worker_memory = release_worker_memory
        self.resources = resources
        self.models = models
        self.datasets = datasets
        self.adapters = adapters
        self.notifier = notifier
        self.jobs_folder = jobs_folder
        self.stop_timeout_s = stop_timeout_s
        self._lock = threading.RLock()
        self._running: RunningWorker | None = None
        self._accepting = True
        self._unrecorded: dict[str, dict[str, Any]] = {}  # final states the database refused, by job
        self._context = multiprocessing.get_context("spawn")
        jobs_folder.mkdir(parents=True, exist_ok=True)

    # -- startup / shutdown ------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark jobs left ``running`` by a previous server as ``interrupted``; start the queue."""
        error = "the server stopped while this job was running; resume it"
        moved = [job["id"] for job in self.store.list_jobs() if job["status"] == "running"]
        for job_id in moved:
            self._finish(job_id, "interrupted", error=error, finished_at=None)
        self._schedule()
        return moved

    def shutdown(self) -> None:
        """Stop accepting work; checkpoint and stop a running worker within the stop timeout."""
        with self._lock:
            self._accepting = False
            running = self._running
        if running is None:
            return
        running.stop.set()
        running.process.join(self.stop_timeout_s)
        if running.process.is_alive():
            log.warning("worker %s did not stop within %.1fs; terminating", running.process.pid, self.stop_timeout_s)
            _terminate(running.process)
        running.finished.wait(1.0)

    # -- queries -----------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        self._flush_unrecorded()
        return [self._overlay(job) for job in self.store.list_jobs()]

    def get(self, job_id: str) -> dict[str, Any]:
        return self._row(job_id)

    def _row(self, job_id: str) -> dict[str, Any]:
        self._flush_unrecorded()
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return self._overlay(job)

    def _overlay(self, job: dict[str, Any]) -> dict[str, Any]:
        pending = self._unrecorded.get(job["id"])
        return {**job, **pending} if pending else job

    def _flush_unrecorded(self) -> None:
        """Write the final states the database refused earlier, now that it may accept them."""
        if not self._unrecorded:
            return
        with self._lock:
            for job_id, fields in list(self._unrecorded.items()):
                data = {key: value for key, value in fields.items() if key != "finished_at"}
                try:
                    self.store.transition(job_id, fields, "state", data)
                except sqlite3.Error:
                    return  # still refused: try again on the next query
                self._unrecorded.pop(job_id, None)
                log.info("recorded the final state of job %s (%s)", job_id, fields["status"])
                self.notifier.notify(job_id)

    def events_after(self, job_id: str, after_seq: int) -> list[dict[str, Any]]:
        return self.store.events_after(job_id, after_seq)

    def active_jobs_using(self, *, dataset: str | None = None, model: str | None = None) -> list[str]:
        return [
            job["id"] for job in self.list()
            if job["status"] in ACTIVE
            and (dataset is None or job["config"]["dataset"] == dataset)
            and (model is None or job["config"]["model"] == model)
        ]

    # -- commands ----------------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        config = self.resolve_config(request)
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        if config["adapter_name"] is None:
            config["adapter_name"] = job_id
        with self._lock:
            if not self._accepting:
                raise Conflict("the server is shutting down; no new jobs are accepted")
            self.store.insert_job(job_id, config, config["total_steps"])
        self.notifier.notify(job_id)
        self._schedule()
        return self.get(job_id)

    def resolve_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every reference; raises InvalidInput naming the field."""
        defaults = self.resources.defaults["training"]
        model = self.models.get(request["model"], field="model")
        preset = self.models.preset(model)
        try:
            dataset = self.datasets.get(request["dataset"])
        except NotFound as exc:
            raise InvalidInput(exc.message, field="dataset", allowed=self.datasets.ids()) from exc
        targets = request.get("target_modules") or list(preset.default_target_modules)
        unknown = [name for name in targets if name not in preset.available_target_modules]
        if unknown:
            raise InvalidInput(
                f"target module(s) {', '.join(unknown)} do not exist in {preset.name} models",
                field="target_modules", allowed=preset.available_target_modules,
            )
        adapter_name = request.get("adapter_name")
        if adapter_name is not None:
            check_name(adapter_name, "adapter_name")
            self.adapters.check_new_id(adapter_name, field="adapter_name")
            if any(job["config"].get("adapter_name") == adapter_name and job["status"] in ACTIVE
                   for job in self.list()):
                raise Conflict(f"an active job already writes adapter {adapter_name!r}", field="adapter_name")
        if request.get("max_steps") is not None and request.get("epochs") is not None:
            raise InvalidInput("give either max_steps or epochs, not both", field="max_steps")
        batch_size = request.get("batch_size") or defaults["batch_size"]
        max_steps = request.get("max_steps")
        epochs = request.get("epochs")
        if max_steps is None and epochs is None:
            max_steps = defaults["max_steps"]
        total = steps_for(dataset["records"], batch_size, max_steps, epochs)
        return {
            "model": model["id"],
            "dataset": dataset["id"],
            "adapter_name": adapter_name,
            "architecture": preset.name,
            "target_modules": list(targets),
            "lora_r": _pick(request, "lora_r", preset.r),
            "lora_alpha": _pick(request, "lora_alpha", preset.alpha),
            "lora_dropout": _pick(request, "lora_dropout", preset.dropout),
            "learning_rate": _pick(request, "learning_rate", defaults["learning_rate"]),
            "max_steps": max_steps,
            "epochs": epochs,
            "total_steps": total,
            "batch_size": batch_size,
            "max_seq_length": _pick(request, "max_seq_length", defaults["max_seq_length"]),
            "seed": _pick(request, "seed", defaults["seed"]),
            "warmup_steps": _pick(request, "warmup_steps", defaults["warmup_steps"]),
            "checkpoint_every": _pick(request, "checkpoint_every", defaults["checkpoint_every"]),
        }

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._row(job_id)
            if job["status"] == "queued":
                self._finish(job_id, "cancelled", error=None)
                return self.get(job_id)
            running = self._running
            if job["status"] != "running" or running is None or running.job_id != job_id:
                raise Conflict(f"job {job_id!r} is {job['status']}; only queued or running jobs can be cancelled")
            running.cancel.set()
        threading.Thread(target=self._enforce_stop, args=(running,), name="cancel", daemon=True).start()
        return self.get(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            if not self._accepting:
                raise Conflict("the server is shutting down; no job can be resumed now")
            job = self._row(job_id)
            if job["status"] not in RESUMABLE:
                raise Conflict(
                    f"job {job_id!r} is {job['status']}; only {' or '.join(RESUMABLE)} jobs can be resumed"
                )
            self.store.transition(job_id, {"status": "queued", "error": None, "finished_at": None}, "state",
                                  {"status": "queued", "resume_from_step": job["checkpoint_step"] or 0})
        self.notifier.notify(job_id)
        self._schedule()
        return self.get(job_id)

    # -- worker lifecycle --------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Start the oldest queued job when none is running. Never raises: it runs in monitor threads."""
        with self._lock:
            if self._running is not None or not self._accepting:
                return
            try:
                queued = [job for job in self.list() if job["status"] == "queued"]
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
                self._finish(job["id"], "failed", error=f"could not start: {type(exc).__name__}: {exc}")
                if job["id"] in self._unrecorded:
                    return  # the database refuses writes: starting the next would fail the same way
                self._schedule()

    def _start(self, job: dict[str, Any]) -> None:
        faults.check("job-start")
        config = job["config"]
        job_dir = path_inside(self.jobs_folder, job["id"], "job")
        job_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_dir = job_dir / "checkpoint"
        spec = TrainingSpec(
            job_id=job["id"],
            model_path=self.models.get(config["model"])["path"],
            dataset_path=str(self.datasets.path_of(config["dataset"])),
            adapter_dir=str(self.adapters.path_for(config["adapter_name"])),
            checkpoint_dir=str(checkpoint_dir),
            target_modules=tuple(config["target_modules"]),
            r=config["lora_r"],
            alpha=config["lora_alpha"],
            dropout=config["lora_dropout"],
            learning_rate=config["learning_rate"],
            total_steps=config["total_steps"],
            batch_size=config["batch_size"],
            max_seq_length=config["max_seq_length"],
            seed=config["seed"],
            warmup_steps=config["warmup_steps"],
            checkpoint_every=config["checkpoint_every"],
            resume=(checkpoint_dir / "trainer_state.pt").is_file(),
        )
        receiver, sender = self._context.Pipe(duplex=False)
        cancel, stop = self._context.Event(), self._context.Event()
        process = self._context.Process(
            target=worker_main, args=(spec.to_dict(), sender, cancel, stop, os.getpid(), self.release_worker_memory),
            name=f"peft-worker-{job['id']}", daemon=True,
        )
        process.start()
        sender.close()  # the worker holds the only writer: EOF here means it is gone
        running = RunningWorker(job_id=job["id"], process=process, conn=receiver, cancel=cancel, stop=stop)
        self._running = running
        # The monitor first: from here on, whatever fails, the job is concluded when the worker ends.
        running.monitor = threading.Thread(
            target=self._monitor, args=(running,), name=f"monitor-{job['id']}", daemon=True
        )
        running.monitor.start()
        try:
            self.store.transition(
                job["id"], {"status": "running", "started_at": time.time(), "error": None,
                            "attempts": job["attempts"] + 1},
                "state", {"status": "running", "worker_pid": process.pid, "resume": spec.resume},
            )
        except Exception as exc:
            self._cannot_record(running, "the start", exc)
        self.notifier.notify(job["id"])

    def _cannot_record(self, running: RunningWorker, what: str, exc: Exception) -> None:
        """A job whose progress cannot be recorded cannot be followed: stop its worker (it checkpoints
        first when it can), and let the monitor conclude it as failed."""
        if running.record_error is None:
            log.exception("could not record %s of job %s; stopping its worker", what, running.job_id)
            running.record_error = f"could not record {what} ({type(exc).__name__}: {exc})"
        running.stop.set()

    def _monitor(self, running: RunningWorker) -> None:
        job_id = running.job_id
        try:
            while True:
                try:
                    message = running.conn.recv()
                except (EOFError, OSError):
                    break
                if running.record_error is None:
                    try:
                        self._handle(job_id, running, message)
                    except Exception as exc:
                        self._cannot_record(running, f"job progress ({message.get('type')})", exc)
                else:  # keep reading, so the worker never blocks on a full pipe; remember how it ended
                    self._remember(running, message)
        finally:
            running.conn.close()
            running.process.join()
            self._conclude(running)

    @staticmethod
    def _remember(running: RunningWorker, message: dict[str, Any]) -> None:
        if message.get("type") == "finished":
            running.outcome = message
        elif message.get("type") == "error":
            running.error = message.get("message")

    def _handle(self, job_id: str, running: RunningWorker, message: dict[str, Any]) -> None:
        kind = message.get("type")
        self._remember(running, message)
        if kind == "step":
            faults.check("monitor-write")
            self.store.transition(job_id, {"current_step": message["step"], "last_loss": message["loss"]},
                                  "step", message)
            self.notifier.notify(job_id)
        elif kind == "checkpoint":
            self.store.transition(job_id, {"checkpoint_step": message["step"]}, "checkpoint", message)
            self.notifier.notify(job_id)
        elif kind == "status":
            self._event(job_id, "status", message)
        elif kind == "error":
            log.error("job %s failed in the worker:\n%s", job_id, message.get("traceback", ""))

    def _conclude(self, running: RunningWorker) -> None:
        """Record how the worker ended; always leaves no job running without a worker, and never raises."""
        job_id = running.job_id
        try:
            status, error, fields = self._outcome(running)
            self._finish(job_id, status, error=error, **fields)
            if status == "cancelled":
                shutil.rmtree(self.jobs_folder / job_id / "checkpoint", ignore_errors=True)
        except Exception:
            log.exception("could not conclude job %s", job_id)
            self._finish(job_id, "failed", error="could not record the result; see the log")
        finally:
            with self._lock:
                if self._running is running:
                    self._running = None
            running.finished.set()
            self._schedule()

    def _outcome(self, running: RunningWorker) -> tuple[str, str | None, dict[str, Any]]:
        """(status, error, extra fields) from how the worker ended; the first that applies wins."""
        exitcode, outcome = running.process.exitcode, running.outcome
        if outcome is not None and outcome["status"] == "completed":
            job = self._row(running.job_id)
            try:
                adapter = self.adapters.record(
                    job["config"]["adapter_name"], job_id=running.job_id, base_model=job["config"]["model"],
                    final_loss=outcome["loss"],
                )
            except Exception as exc:
                log.exception("could not record the adapter of job %s", running.job_id)
                return "failed", f"trained, but the adapter could not be recorded ({type(exc).__name__}: {exc})", {}
            return "completed", None, {"adapter_id": adapter["id"]}
        if running.cancel.is_set():
            return "cancelled", None, {}
        if running.record_error is not None:
            resume = "; resume it from its last checkpoint" if outcome is not None else "; resume it"
            return "failed", running.record_error + resume, {}
        if outcome is not None and outcome["status"] == "interrupted":
            return "interrupted", "stopped with the server; resume it to continue", {}
        if running.error is not None:
            return "failed", running.error, {}
        if exitcode is not None and exitcode < 0:
            return "interrupted", f"worker killed by signal {-exitcode}; resume it", {}
        return "failed", f"worker exited with code {exitcode} without a result", {}

    def _enforce_stop(self, running: RunningWorker) -> None:
        running.process.join(self.stop_timeout_s)
        if running.process.is_alive():
            _terminate(running.process)

    def _finish(self, job_id: str, status: str, *, error: str | None, **fields: Any) -> None:
        """Record a final state with its event; when the database refuses (a full disk), keep it in
        memory, where every query sees it, until it can be written."""
        changes = {"status": status, "error": error, "finished_at": time.time(), **fields}
        data = {"status": status, "error": error, **{k: v for k, v in fields.items() if v is not None}}
        with self._lock:
            try:
                self.store.transition(job_id, changes, "state", data)
                self._unrecorded.pop(job_id, None)
            except sqlite3.Error:
                log.exception("could not record that job %s is %s; kept in memory until it can be", job_id, status)
                self._unrecorded[job_id] = changes
        self.notifier.notify(job_id)

    def _event(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        self.store.append_event(job_id, kind, data)
        self.notifier.notify(job_id)


def _pick(request: dict[str, Any], key: str, default: Any) -> Any:
    value = request.get(key)
    return default if value is None else value


def _terminate(process: multiprocessing.process.BaseProcess) -> None:
    process.terminate()
    process.join(0.5)
    if process.is_alive():
        process.kill()
        process.join(0.5)
