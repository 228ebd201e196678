"""The database schema is versioned: a database made by the first release is migrated, a newer one is
refused untouched, and a new database is the same as a migrated one."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from backend.runtime_paths import current_layout
from backend.services.container import build_services
from backend.services.job_config import JobConfig
from backend.services.store import SCHEMA_VERSION, DatabaseTooNew, Store
from backend.settings import Settings
from tests.support.fake_workers import FakeLauncher

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
V1 = FIXTURES / "state-v1.sqlite3"  # written by the code of commit 62cc1c2 (schema 1), never by a test


def schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [(name, " ".join(sql.split())) for name, sql in rows]


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_the_first_releases_database_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(V1, data / "state.sqlite3")
    store = Store(data / "state.sqlite3")
    assert store.migrated_from == 1 and version(data / "state.sqlite3") == SCHEMA_VERSION
    jobs = {job["status"]: job for job in store.list_jobs()}
    assert set(jobs) == {"running", "completed"} and all(job["runtime"] is None for job in jobs.values())
    old = JobConfig.from_dict(jobs["completed"]["config"])
    assert old.adapter_name == "old-adapter" and old.device == "cpu" and old.train_on == "all"
    assert store.query_one("SELECT id, formats FROM datasets") == {"id": "old-set", "formats": None}
    assert store.query_one("SELECT id FROM adapters")["id"] == "old-adapter"
    assert store.query_one("SELECT id FROM models")["id"] == "old-model"
    store.close()


def test_a_migrated_database_serves_its_jobs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(V1, data / "state.sqlite3")
    services = build_services(Settings(data_dir=data, token="x" * 20), current_layout(), launcher=FakeLauncher())
    assert services.jobs.recover(), "the job the first release left running is interrupted"
    listed = {job["status"] for job in services.jobs.list()}
    assert listed == {"interrupted", "completed"}
    assert [d["id"] for d in services.datasets.list()] == ["sample-instructions", "old-set"]
    services.close()


def test_a_new_database_is_the_same_as_a_migrated_one(tmp_path: Path) -> None:
    Store(tmp_path / "new.sqlite3").close()
    shutil.copy(V1, tmp_path / "old.sqlite3")
    Store(tmp_path / "old.sqlite3").close()
    assert schema(tmp_path / "new.sqlite3") == schema(tmp_path / "old.sqlite3")


def test_a_database_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DatabaseTooNew, match="newer peft-engine"):
        Store(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
