"""SQLite state in the data dir (WAL): jobs, their progress events, datasets, adapters, registered models.

One connection shared by the API's threads behind a lock: the database is small and every statement
is short, so serialising them costs nothing measurable and keeps the code free of connection pools.
Only the server process writes here; training workers report through a pipe.

The schema is versioned (``meta.schema_version``). Opening a database migrates an older one to
:data:`SCHEMA_VERSION`, one transaction for all steps (:data:`MIGRATIONS`), and refuses a newer one
(:class:`DatabaseTooNew`) without touching it: two installed versions can share a data dir, and the
older one says what to do instead of corrupting what the newer one wrote.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # what this version writes; it reads this and migrates every earlier one

# Version 1, as the first release created it. A new database is created at version 1 and migrated like
# any other, so that a new and a migrated database are the same by construction.
SCHEMA_V1: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS jobs (
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
)""",
    """CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
)""",
    """CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS adapters (
    id TEXT PRIMARY KEY,
    job_id TEXT,
    base_model TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL,
    final_loss REAL
)""",
    """CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    architecture TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL
)""",
)

# MIGRATIONS[n]: the statements that take a database from version n - 1 to n, run in one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        # what the worker resolved when the job started: device, dtype, target modules, examples
        "ALTER TABLE jobs ADD COLUMN runtime TEXT",
        # the record shapes a dataset holds (text, alpaca, prompt_completion, messages, sharegpt)
        "ALTER TABLE datasets ADD COLUMN formats TEXT",
        # what a model probe found in a model folder, while the folder is unchanged (its fingerprint)
        """CREATE TABLE model_facts (
    path TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    facts TEXT NOT NULL,
    probed_at REAL NOT NULL
)""",
    ),
}
assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1)), "one migration per version, none missing"


class DatabaseTooNew(Exception):
    """The database was migrated by a newer backend: this one must not write to it."""

    def __init__(self, path: Path, found: int):
        self.path, self.found = path, found
        super().__init__(
            f"the database {path} was written by a newer peft-engine (schema {found}; this version reads up to "
            f"{SCHEMA_VERSION}): start the newer version, or give this one another --data-dir"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """Bring the database to :data:`SCHEMA_VERSION` in one transaction; returns (found, now). A database
    newer than this version raises :class:`DatabaseTooNew` and is left as it is."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None
        if fresh:
            for statement in SCHEMA_V1:
                conn.execute(statement)
            conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '1')")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row is not None else 1
        if found > SCHEMA_VERSION:
            raise DatabaseTooNew(path, found)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return (0 if fresh else found), SCHEMA_VERSION


def migrated_from(found: int) -> int | None:
    """The version a database was migrated from at this open (None: created, or already current)."""
    return found if 0 < found < SCHEMA_VERSION else None


JOB_COLUMNS = (
    "id", "status", "config", "created_at", "updated_at", "started_at", "finished_at", "current_step",
    "total_steps", "last_loss", "checkpoint_step", "adapter_id", "error", "attempts", "runtime",
)
JSON_JOB_COLUMNS = ("config", "runtime")


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.migrated_from = migrated_from(migrate(self._conn, path)[0])
        except BaseException:
            self._conn.close()
            raise

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

    def move_job(self, job_id: str, *, sources: frozenset[str], fields: Mapping[str, Any], event_type: str,
                 data: Mapping[str, Any]) -> str | None:
        """Change a job's row and record the event that says so, in one transaction, only if the row's
        status is one of ``sources`` (:func:`backend.services.job_states.move`); returns the status it
        had (None: no such job)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] not in sources:
                return None if row is None else str(row[0])
            self._update_job(conn, job_id, dict(fields))
            self._append_event(conn, job_id, event_type, dict(data))
            return str(row[0])

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
        for name in JSON_JOB_COLUMNS:
            if name in fields and fields[name] is not None and not isinstance(fields[name], str):
                fields[name] = json.dumps(fields[name], sort_keys=True)
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
    for name in JSON_JOB_COLUMNS:
        if row.get(name) is not None:
            row[name] = json.loads(row[name])
    return row
