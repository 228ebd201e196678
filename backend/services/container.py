"""Builds every service from the settings: the one place that knows the data dir layout."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from backend.runtime_paths import RuntimeLayout, default_data_dir
from backend.services.adapters import AdapterStore
from backend.services.datasets import DatasetStore
from backend.services.events import JobChangeNotifier
from backend.services.inference import InferenceService
from backend.services.jobs import JobManager
from backend.services.lifecycle import Lifecycle
from backend.services.models import ModelRegistry
from backend.services.resources import BundledResources
from backend.services.store import Store
from backend.settings import Settings

log = logging.getLogger(__name__)


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


def build_services(settings: Settings, layout: RuntimeLayout, lifecycle: Lifecycle | None = None) -> Services:
    data_dir = resolve_data_dir(settings, layout)
    store = Store(data_dir / "state.sqlite3")
    resources = BundledResources(layout.resources)
    merged = data_dir / "models"
    merged.mkdir(parents=True, exist_ok=True)
    models = ModelRegistry(store, resources, merged)
    datasets = DatasetStore(store, data_dir / "datasets", resources)
    adapters = AdapterStore(store, data_dir / "adapters")
    notifier = JobChangeNotifier()
    jobs = JobManager(
        store, resources, models, datasets, adapters, notifier, data_dir / "jobs",
        stop_timeout_s=settings.worker_stop_timeout_s, release_worker_memory=settings.release_startup_memory,
    )
    return Services(
        settings=settings, layout=layout, data_dir=data_dir, store=store, resources=resources,
        models=models, datasets=datasets, adapters=adapters, jobs=jobs,
        inference=InferenceService(models, adapters, merged), notifier=notifier,
        lifecycle=lifecycle or Lifecycle(),
    )
