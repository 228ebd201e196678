"""Trained LoRA adapters: one folder each under the data dir, recorded in SQLite."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from backend.errors import Conflict, InvalidInput, NotFound
from backend.names import check_name, path_inside
from backend.services.store import Store


class AdapterStore:
    def __init__(self, store: Store, folder: Path):
        self.store = store
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path_for(self, adapter_id: str) -> Path:
        return path_inside(self.folder, adapter_id, "adapter")

    def check_new_id(self, adapter_id: str, field: str = "name") -> None:
        check_name(adapter_id, field)
        if self.store.query_one("SELECT 1 FROM adapters WHERE id = ?", (adapter_id,)):
            raise Conflict(f"adapter {adapter_id!r} already exists: delete it or pick another name", field=field)

    def record(self, adapter_id: str, *, job_id: str, base_model: str, final_loss: float | None) -> dict[str, Any]:
        path = self.path_for(adapter_id)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"the worker reported success but {path} holds no adapter")
        self.store.execute(
            "INSERT OR REPLACE INTO adapters(id, job_id, base_model, path, created_at, final_loss) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (adapter_id, job_id, base_model, str(path), time.time(), final_loss),
        )
        return self.get(adapter_id)

    def list(self) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM adapters ORDER BY created_at")

    def ids(self) -> list[str]:
        return [row["id"] for row in self.list()]

    def get(self, adapter_id: str, field: str | None = None) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM adapters WHERE id = ?", (adapter_id,))
        if row is None:
            message = f"adapter {adapter_id!r} not found"
            if field:  # referenced from a request body: bad input, not a missing resource
                raise InvalidInput(message, field=field, allowed=self.ids())
            raise NotFound(message, allowed=self.ids())
        return row

    def delete(self, adapter_id: str) -> None:
        row = self.get(adapter_id)
        self.store.execute("DELETE FROM adapters WHERE id = ?", (adapter_id,))
        shutil.rmtree(Path(row["path"]), ignore_errors=True)
