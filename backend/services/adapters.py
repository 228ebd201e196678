"""Trained LoRA adapters: one folder each under the data dir, recorded in SQLite."""

from __future__ import annotations

import builtins
import shutil
import time
from pathlib import Path
from typing import Any

from backend.errors import Conflict, NotFound
from backend.names import check_name, name_key
from backend.safe_io import check_tree_unlinked
from backend.services.data_dir import DataDir
from backend.services.store import Store


class AdapterStore:
    def __init__(self, store: Store, data_dir: DataDir):
        self.store = store
        self.data_dir = data_dir

    def path_for(self, adapter_id: str, field: str = "adapter") -> Path:
        check_name(adapter_id, field)
        return self.data_dir.path("adapters", adapter_id, field=field)

    def check_new_id(self, adapter_id: str, field: str = "name") -> None:
        check_name(adapter_id, field)
        key = name_key(adapter_id)
        taken = next((existing for existing in self.ids() if name_key(existing) == key), None)
        if taken is not None:
            same = "already exists" if taken == adapter_id else f"differs from the adapter {taken!r} only by case"
            raise Conflict(f"adapter {adapter_id!r} {same}: delete it or pick another name", field=field)

    def record(self, adapter_id: str, *, job_id: str, base_model: str, final_loss: float | None) -> dict[str, Any]:
        path = self.path_for(adapter_id)
        check_tree_unlinked(self.data_dir.root, path)
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"the worker reported success but {path} holds no adapter")
        self.store.execute(
            "INSERT OR REPLACE INTO adapters(id, job_id, base_model, path, created_at, final_loss) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (adapter_id, job_id, base_model, str(path), time.time(), final_loss),
        )
        return self.get(adapter_id)

    def list(self) -> builtins.list[dict[str, Any]]:
        return self.store.query("SELECT * FROM adapters ORDER BY created_at")

    def ids(self) -> builtins.list[str]:
        return [row["id"] for row in self.list()]

    def get(self, adapter_id: str, field: str | None = None) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM adapters WHERE id = ?", (adapter_id,))
        if row is None:
            message = f"adapter {adapter_id!r} not found"
            # referenced from a request body, ``field`` names it: 404 either way, as for a path
            raise NotFound(message, field=field, allowed=self.ids(), listed_at="/api/adapters")
        return row

    def folder(self, adapter: dict[str, Any]) -> Path:
        """An adapter's folder, proven the data dir's own (no link on the way or inside) before it is read."""
        path = self.path_for(adapter["id"])
        check_tree_unlinked(self.data_dir.root, path)
        return path

    def delete(self, adapter_id: str) -> None:
        self.get(adapter_id)
        path = self.data_dir.folder("adapters") / adapter_id  # the leaf may be a planted link: removed, never followed
        self.store.execute("DELETE FROM adapters WHERE id = ?", (adapter_id,))
        if path.is_symlink():  # never follow it: remove the link itself
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
