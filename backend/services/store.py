"""SQLite state in the data dir (WAL): jobs, their progress events, datasets, adapters, registered models.

One connection shared by the API's threads behind a lock: the database is small and every statement
is short, so serialising them costs nothing measurable and keeps the code free of connection pools.
Only the server process writes here; training workers report through a pipe.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    current_step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    last_loss REAL,
    checkpoint_step INTEGER,
    adapter_id TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS adapters (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    base_model TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL,
    final_loss REAL
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    architecture TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

JOB_COLUMNS = (
    "id", "status", "config", "created_at", "updated_at", "started_at", "finished_at", "current_step",
    "total_steps", "last_loss", "checkpoint_step", "adapter_id", "error", "attempts",
)


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql, params).fetchall()]

    def query_one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    # -- jobs ---------------------------------------------------------------------------------------
    def insert_job(self, job_id: str, config: dict[str, Any], total_steps: int) -> None:
        """A new ``queued`` job and its first event, together or not at all."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs(id, status, config, created_at, updated_at, total_steps) "
                "VALUES (?, 'queued', ?, ?, ?, ?)",
                (job_id, json.dumps(config, sort_keys=True), now, now, total_steps),
            )
            self._append_event(conn, job_id, "state", {"status": "queued"})

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _decode_job(row) if row else None

    def list_jobs(self) -> list[dict[str, Any]]:
        return [_decode_job(row) for row in self.query("SELECT * FROM jobs ORDER BY created_at DESC")]

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self.transaction() as conn:
            self._update_job(conn, job_id, fields)

    def transition(self, job_id: str, fields: dict[str, Any], event_type: str, data: dict[str, Any]) -> int:
        """Change a job's row and record the event that says so, together or not at all; returns the
        event's sequence number."""
        with self.transaction() as conn:
            self._update_job(conn, job_id, fields)
            return self._append_event(conn, job_id, event_type, data)

    @staticmethod
    def _update_job(conn: sqlite3.Connection, job_id: str, fields: dict[str, Any]) -> None:
        unknown = set(fields) - set(JOB_COLUMNS)
        if unknown:
            raise KeyError(f"unknown job columns {sorted(unknown)}")
        fields = {**fields, "updated_at": time.time()}
        assignments = ", ".join(f"{name} = ?" for name in fields)
        conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))

    def append_event(self, job_id: str, event_type: str, data: dict[str, Any]) -> int:
        with self.transaction() as conn:
            return self._append_event(conn, job_id, event_type, data)

    @staticmethod
    def _append_event(conn: sqlite3.Connection, job_id: str, event_type: str, data: dict[str, Any]) -> int:
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id = ?", (job_id,))
        seq = int(row.fetchone()[0]) + 1
        conn.execute(
            "INSERT INTO job_events(job_id, seq, created_at, type, data) VALUES (?, ?, ?, ?, ?)",
            (job_id, seq, time.time(), event_type, json.dumps(data)),
        )
        return seq

    def events_after(self, job_id: str, after_seq: int, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT seq, created_at, type, data FROM job_events WHERE job_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (job_id, after_seq, limit),
        )
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows


def _decode_job(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["config"] = json.loads(row["config"])
    return row
