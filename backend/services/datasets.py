"""Instruction datasets: JSONL uploads validated line by line, stored in the data dir.

A record is either ``{"text": ...}`` or ``{"instruction": ..., "output": ..., "input"?: ...}``, every
value a string. An upload is written to a temporary file first and only renamed into place once every
line is valid, so a rejected upload leaves nothing behind and replaces nothing.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from backend.names import check_name, path_inside
from backend.services.resources import SAMPLE_DATASET_FILE, BundledResources
from backend.services.store import Store

SAMPLE_DATASET_ID = SAMPLE_DATASET_FILE.removesuffix(".jsonl")
MAX_REPORTED_ERRORS = 20
ALLOWED_SHAPES = "either {'text'} or {'instruction', 'output'} with optional 'input', all strings"


@dataclass(frozen=True)
class ValidationReport:
    records: int
    errors: list[str]


def validate_record(value: Any) -> str | None:
    """None when ``value`` is a usable record, else a message saying what is wrong."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    if "text" in value:
        if not isinstance(value["text"], str) or not value["text"].strip():
            return "field 'text' must be a non-empty string"
        return None
    missing = [name for name in ("instruction", "output") if name not in value]
    if missing:
        return f"missing field(s) {', '.join(repr(m) for m in missing)}: records need {ALLOWED_SHAPES}"
    for name in ("instruction", "output", "input"):
        if name in value and not isinstance(value[name], str):
            return f"field {name!r} must be a string, got {type(value[name]).__name__}"
    if not value["instruction"].strip() or not value["output"].strip():
        return "fields 'instruction' and 'output' must not be empty"
    return None


def validate_jsonl(path: Path, max_lines: int) -> ValidationReport:
    errors: list[str] = []
    records = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
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
    if records == 0 and not errors:
        errors.append("the dataset has no records")
    return ValidationReport(records=records, errors=errors)


def load_records(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class DatasetStore:
    def __init__(self, store: Store, folder: Path, resources: BundledResources):
        self.store = store
        self.folder = folder
        self.resources = resources
        limits = resources.defaults["limits"]
        self.max_bytes = int(limits["max_dataset_bytes"])
        self.max_lines = int(limits["max_dataset_lines"])
        folder.mkdir(parents=True, exist_ok=True)

    def _sample(self) -> dict[str, Any]:
        path = self.resources.sample_dataset
        return {
            "id": SAMPLE_DATASET_ID,
            "source": "bundled",
            "records": sum(1 for line in path.open(encoding="utf-8") if line.strip()),
            "bytes": path.stat().st_size,
            "created_at": None,
        }

    def list(self) -> list[dict[str, Any]]:
        uploaded = self.store.query("SELECT id, records, bytes, created_at FROM datasets ORDER BY id")
        return [self._sample(), *({**row, "source": "uploaded"} for row in uploaded)]

    def get(self, dataset_id: str) -> dict[str, Any]:
        if dataset_id == SAMPLE_DATASET_ID:
            return self._sample()
        row = self.store.query_one("SELECT id, records, bytes, created_at FROM datasets WHERE id = ?", (dataset_id,))
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found", field="dataset", allowed=self.ids())
        return {**row, "source": "uploaded"}

    def ids(self) -> list[str]:
        return [row["id"] for row in self.list()]

    def path_of(self, dataset_id: str) -> Path:
        if dataset_id == SAMPLE_DATASET_ID:
            return self.resources.sample_dataset
        self.get(dataset_id)
        return path_inside(self.folder, f"{dataset_id}.jsonl", "dataset")

    def check_new_name(self, name: str) -> None:
        check_name(name)
        if name == SAMPLE_DATASET_ID or self.store.query_one("SELECT 1 FROM datasets WHERE id = ?", (name,)):
            raise Conflict(f"dataset {name!r} already exists: delete it first or pick another name", field="name")

    async def upload(self, name: str, chunks: AsyncIterator[bytes], declared_length: int | None) -> dict[str, Any]:
        self.check_new_name(name)
        if declared_length is not None and declared_length > self.max_bytes:
            raise PayloadTooLarge(f"dataset is {declared_length} bytes; the limit is {self.max_bytes} bytes")
        temp = self.folder / f".upload-{uuid.uuid4().hex}.tmp"
        size = 0
        try:
            with temp.open("wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"dataset exceeds the limit of {self.max_bytes} bytes")
                    handle.write(chunk)
            report = validate_jsonl(temp, self.max_lines)
            if report.errors:
                shown = report.errors[:MAX_REPORTED_ERRORS]
                more = len(report.errors) - len(shown)
                suffix = f" (and {more} more)" if more else ""
                raise InvalidInput(
                    f"dataset rejected, nothing was stored: {'; '.join(shown)}{suffix}", field="body"
                )
            final = path_inside(self.folder, f"{name}.jsonl", "name")
            self.check_new_name(name)  # another upload may have taken it meanwhile
            os.replace(temp, final)
            self.store.execute(
                "INSERT INTO datasets(id, filename, records, bytes, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, final.name, report.records, size, time.time()),
            )
        finally:
            temp.unlink(missing_ok=True)
        return self.get(name)

    def delete(self, dataset_id: str, in_use_by: list[str]) -> None:
        if dataset_id == SAMPLE_DATASET_ID:
            raise Conflict(f"dataset {dataset_id!r} is bundled with the app and cannot be deleted")
        path = self.path_of(dataset_id)
        if in_use_by:
            raise Conflict(f"dataset {dataset_id!r} is used by active job(s) {', '.join(in_use_by)}")
        self.store.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
        path.unlink(missing_ok=True)
