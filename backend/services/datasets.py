"""Datasets: JSONL uploads validated line by line, stored in the data dir.

Each line is a record in one of the shapes of :mod:`backend.services.chat` (text, prompt / completion,
Alpaca, OpenAI ``messages``, ShareGPT ``conversations``); a dataset may mix them, and records the
shapes it holds. An upload streams to a temporary file against the size limit, is validated in a
worker thread (never on the event loop), and is renamed into place only once every line is valid: a
rejected upload leaves nothing behind and replaces nothing. A temporary file that a crash left is
removed at the next start (:meth:`backend.services.data_dir.DataDir.sweep`).
"""

from __future__ import annotations

import builtins
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread

from backend.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from backend.names import check_name, name_key
from backend.safe_io import read_bounded
from backend.services.chat import SHAPES, RecordError, record_shape, to_example
from backend.services.data_dir import DataDir
from backend.services.resources import SAMPLE_DATASET_FILE, BundledResources
from backend.services.store import Store

SAMPLE_DATASET_ID = SAMPLE_DATASET_FILE.removesuffix(".jsonl")
SAMPLE_FORMATS = ("alpaca",)
MAX_REPORTED_ERRORS = 20
COLUMNS = "id, records, bytes, created_at, formats"


@dataclass(frozen=True)
class ValidationReport:
    records: int
    errors: builtins.list[str]
    formats: tuple[str, ...] = field(default_factory=tuple)


def validate_record(value: Any) -> str | None:
    """None when ``value`` is a usable record, else a message saying what is wrong."""
    try:
        to_example(value)
    except RecordError as exc:
        return str(exc)
    return None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)


YIELD_EVERY_LINES = 64  # ~0.5 ms of validation between two chances for the event loop to take the GIL


def validate_jsonl(path: Path, max_lines: int) -> ValidationReport:
    """Every line checked (in a worker thread). The loop is pure Python and would hold the GIL for the
    whole switch interval (5 ms) every time the event loop's thread gave it up for a system call: a
    request of dozens of calls then waited that long for each, and ``/health`` took 1.3-2.3 s during a
    46 MiB upload. It gives the GIL up itself every few lines, so the event loop's thread gets it at once."""
    errors: builtins.list[str] = []
    records = 0
    formats: set[str] = set()
    for number, raw in _lines(path):
        if number % YIELD_EVERY_LINES == 0:
            time.sleep(0)  # releases the GIL: a waiting thread (the event loop's) takes it now
        if number > max_lines:
            errors.append(f"more than {max_lines} lines: split the dataset")
            break
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            errors.append(f"line {number}: not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            errors.append(f"line {number}: JSON nested too deeply")
            continue
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            errors.append(f"line {number}: unreadable JSON value ({exc})")
            continue
        problem = validate_record(value)
        if problem:
            errors.append(f"line {number}: {problem}")
        else:
            records += 1
            formats.add(record_shape(value))
    if records == 0 and not errors:
        errors.append("the dataset has no records")
    return ValidationReport(records=records, errors=errors, formats=tuple(s for s in SHAPES if s in formats))


class DatasetStore:
    def __init__(self, store: Store, data_dir: DataDir, resources: BundledResources):
        self.store = store
        self.data_dir = data_dir
        self.resources = resources
        limits = resources.defaults["limits"]
        self.max_bytes = int(limits["max_dataset_bytes"])
        self.max_lines = int(limits["max_dataset_lines"])
        self._sample_cache: dict[str, Any] | None = None

    def _sample(self) -> dict[str, Any]:
        if self._sample_cache is None:
            path = self.resources.sample_dataset
            data = read_bounded(path, self.max_bytes, "bundled dataset")
            self._sample_cache = {"id": SAMPLE_DATASET_ID, "source": "bundled",
                                  "records": sum(1 for line in data.splitlines() if line.strip()),
                                  "bytes": len(data), "created_at": None, "formats": list(SAMPLE_FORMATS)}
        return dict(self._sample_cache)

    @staticmethod
    def _row(row: dict[str, Any]) -> dict[str, Any]:
        formats = row.get("formats")
        return {**row, "source": "uploaded", "formats": formats.split(",") if formats else None}

    def list(self) -> builtins.list[dict[str, Any]]:
        uploaded = self.store.query(f"SELECT {COLUMNS} FROM datasets ORDER BY id")
        return [self._sample(), *(self._row(row) for row in uploaded)]

    def get(self, dataset_id: str, field: str | None = None) -> dict[str, Any]:
        if dataset_id == SAMPLE_DATASET_ID:
            return self._sample()
        row = self.store.query_one(f"SELECT {COLUMNS} FROM datasets WHERE id = ?", (dataset_id,))
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found", field=field or "dataset", allowed=self.ids(),
                        listed_at="/api/datasets")
        return self._row(row)

    def ids(self) -> builtins.list[str]:
        return [row["id"] for row in self.list()]

    def path_of(self, dataset_id: str) -> Path:
        if dataset_id == SAMPLE_DATASET_ID:
            return self.resources.sample_dataset
        self.get(dataset_id)
        return self.data_dir.path("datasets", f"{dataset_id}.jsonl", field="dataset")

    def check_new_name(self, name: str) -> None:
        check_name(name)
        key = name_key(name)
        taken = next((existing for existing in self.ids() if name_key(existing) == key), None)
        if taken is not None:
            same = "already exists" if taken == name else f"differs from the existing dataset {taken!r} only by case"
            raise Conflict(f"dataset {name!r} {same}: delete it first or pick another name", field="name")

    async def upload(self, name: str, chunks: AsyncIterator[bytes], declared_length: int | None,
                     run_in_thread: Callable[..., Any] | None = None) -> dict[str, Any]:
        """Stream the body to a temporary file, validate it off the event loop, then move it into place."""
        self.check_new_name(name)
        if declared_length is not None and declared_length > self.max_bytes:
            raise PayloadTooLarge(f"dataset is {declared_length} bytes; the limit is {self.max_bytes} bytes")
        offload = run_in_thread or to_thread.run_sync
        temp = self.data_dir.path("datasets", f".upload-{uuid.uuid4().hex}.tmp")
        size = 0
        try:
            with temp.open("xb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"dataset exceeds the limit of {self.max_bytes} bytes")
                    handle.write(chunk)
            report: ValidationReport = await offload(validate_jsonl, temp, self.max_lines)
            if report.errors:
                shown = report.errors[:MAX_REPORTED_ERRORS]
                more = len(report.errors) - len(shown)
                suffix = f" (and {more} more)" if more else ""
                raise InvalidInput(f"dataset rejected, nothing was stored: {'; '.join(shown)}{suffix}", field="body")
            final = self.data_dir.path("datasets", f"{name}.jsonl")
            self.check_new_name(name)  # another upload may have taken it meanwhile
            os.replace(temp, final)
            self.store.execute(
                "INSERT INTO datasets(id, filename, records, bytes, created_at, formats) VALUES (?, ?, ?, ?, ?, ?)",
                (name, final.name, report.records, size, time.time(), ",".join(report.formats)),
            )
        finally:
            temp.unlink(missing_ok=True)
        return self.get(name)

    def delete(self, dataset_id: str, in_use_by: builtins.list[str]) -> None:
        if dataset_id == SAMPLE_DATASET_ID:
            raise Conflict(f"dataset {dataset_id!r} is bundled with the app and cannot be deleted")
        path = self.path_of(dataset_id)
        if in_use_by:
            raise Conflict(f"dataset {dataset_id!r} is used by active job(s) {', '.join(in_use_by)}")
        self.store.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
        path.unlink(missing_ok=True)
