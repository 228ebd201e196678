"""Builds every service from the settings: the one place that knows the data dir layout."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from backend.runtime_paths import RuntimeLayout, default_data_dir
from backend.services.adapters import AdapterStore
from backend.services.admission import Admission
from backend.services.data_dir import DataDir
from backend.services.datasets import DatasetStore
from backend.services.events import JobChangeNotifier
from backend.services.inference import InferenceService
from backend.services.job_runner import SpawnLauncher, WorkerLauncher
from backend.services.jobs import JobManager
from backend.services.lifecycle import Lifecycle
from backend.services.model_probe import ModelProber
from backend.services.models import ModelRegistry
from backend.services.resources import BundledResources
from backend.services.store import Store
from backend.settings import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "state.sqlite3"


@dataclass
class Services:
    settings: Settings
    layout: RuntimeLayout
    data_dir: Path
    store: Store
    resources: BundledResources
    models: ModelRegistry
    datasets: DatasetStore
    adapters: AdapterStore
    jobs: JobManager
    inference: InferenceService
    admission: Admission
    notifier: JobChangeNotifier
    lifecycle: Lifecycle

    def close(self) -> None:
        self.jobs.shutdown()
        self.store.close()


PRIVATE_DIR_MODE = 0o700


def resolve_data_dir(settings: Settings, layout: RuntimeLayout) -> Path:
    """The data dir, created if needed and private to this user: it holds training data, adapters and
    logs, which other local users must not read (as ssh keeps ``~/.ssh``, Jupyter its runtime files)."""
    data_dir = (settings.data_dir or default_data_dir()).expanduser().resolve()
    layout.check_data_dir(data_dir)
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    make_private(data_dir)
    return data_dir


def make_private(folder: Path) -> None:
    """Take group and other access away from a folder this user owns (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    status = folder.stat()
    if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & 0o077:
        log.info("data dir %s was readable by other users (%o); now %o", folder, stat.S_IMODE(status.st_mode),
                 PRIVATE_DIR_MODE)
        folder.chmod(PRIVATE_DIR_MODE)


def build_services(settings: Settings, layout: RuntimeLayout, lifecycle: Lifecycle | None = None, *,
                   launcher: WorkerLauncher | None = None, prober: ModelProber | None = None) -> Services:
    """Every service over the data dir. ``launcher`` and ``prober``: what starts training workers and model
    probes (tests give their own); by default, ``multiprocessing`` spawn children of this program."""
    root = resolve_data_dir(settings, layout)
    data_dir = DataDir(root)
    data_dir.sweep()
    store = Store(root / DATABASE_NAME)
    if store.migrated_from:
        log.info("database %s migrated from schema %d", store.path, store.migrated_from)
    resources = BundledResources(layout.resources)
    prober = prober or ModelProber()
    models = ModelRegistry(store, resources, data_dir.folder("models"), prober)
    datasets = DatasetStore(store, data_dir, resources)
    adapters = AdapterStore(store, data_dir)
    notifier = JobChangeNotifier()
    jobs = JobManager(
        store, resources, models, datasets, adapters, notifier, data_dir,
        launcher or SpawnLauncher(release_memory=settings.release_startup_memory),
        stop_timeout_s=settings.worker_stop_timeout_s, device_facts=prober.devices,
    )
    return Services(
        settings=settings, layout=layout, data_dir=root, store=store, resources=resources,
        models=models, datasets=datasets, adapters=adapters, jobs=jobs,
        inference=InferenceService(models, adapters, data_dir),
        admission=Admission(max_waiting=settings.max_waiting_generations), notifier=notifier,
        lifecycle=lifecycle or Lifecycle(),
    )
