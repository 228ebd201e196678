"""Base models: the bundled tiny model plus models registered from local folders or made by merging.

Registration reads ``config.json`` only (no torch): the folder must exist, hold a config, and name a
``model_type`` that has a LoRA preset.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from backend.errors import Conflict, InvalidInput, NotFound
from backend.names import check_name
from backend.services.resources import BUNDLED_MODEL_ID, ArchitecturePreset, BundledResources
from backend.services.store import Store


def read_model_type(folder: Path) -> str:
    try:
        return _read_model_type(folder)
    except (OSError, ValueError) as exc:  # a name too long, a NUL, a folder we may not read
        if isinstance(exc, InvalidInput):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot use {str(folder)[:200]!r} as a model folder: {reason}", field="path") from exc


def _read_model_type(folder: Path) -> str:
    config_path = folder / "config.json"
    if not folder.is_dir():
        raise InvalidInput(f"model folder {str(folder)!r} does not exist or is not a folder", field="path")
    if not config_path.is_file():
        raise InvalidInput(
            f"model folder {str(folder)!r} has no config.json: pick the folder that save_pretrained wrote",
            field="path",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read {config_path}: {exc}", field="path") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise InvalidInput(f"{config_path} has no 'model_type'", field="path")
    return model_type


class ModelRegistry:
    def __init__(self, store: Store, resources: BundledResources, merged_folder: Path):
        self.store = store
        self.resources = resources
        self.merged_folder = merged_folder

    def _bundled(self) -> dict[str, Any]:
        return {
            "id": BUNDLED_MODEL_ID,
            "path": str(self.resources.bundled_model_dir),
            "architecture": read_model_type(self.resources.bundled_model_dir),
            "source": "bundled",
            "created_at": None,
        }

    def list(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id, path, architecture, source, created_at FROM models ORDER BY id")
        return [self._bundled(), *rows]

    def ids(self) -> list[str]:
        return [row["id"] for row in self.list()]

    def get(self, model_id: str, field: str | None = None) -> dict[str, Any]:
        if model_id == BUNDLED_MODEL_ID:
            return self._bundled()
        row = self.store.query_one(
            "SELECT id, path, architecture, source, created_at FROM models WHERE id = ?", (model_id,)
        )
        if row is None:
            message = f"model {model_id!r} not found"
            if field:  # referenced from a request body: that is bad input, not a missing resource
                raise InvalidInput(message, field=field, allowed=self.ids())
            raise NotFound(message, allowed=self.ids())
        return row

    def preset(self, model: dict[str, Any]) -> ArchitecturePreset:
        preset = self.resources.preset_for_model_type(model["architecture"])
        if preset is None:  # registered before a preset was removed
            raise InvalidInput(
                f"model {model['id']!r} has architecture {model['architecture']!r} with no LoRA preset",
                field="model", allowed=self.resources.supported_model_types,
            )
        return preset

    def check_new_id(self, model_id: str) -> None:
        check_name(model_id)
        if model_id == BUNDLED_MODEL_ID or self.store.query_one("SELECT 1 FROM models WHERE id = ?", (model_id,)):
            raise Conflict(f"model {model_id!r} already exists: pick another name", field="name")

    def register(self, model_id: str, folder: Path, source: str = "local") -> dict[str, Any]:
        self.check_new_id(model_id)
        try:
            folder = folder.expanduser().resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise InvalidInput(f"cannot use {str(folder)[:200]!r} as a model folder: {exc}", field="path") from exc
        model_type = read_model_type(folder)
        if self.resources.preset_for_model_type(model_type) is None:
            raise InvalidInput(
                f"architecture {model_type!r} is not supported",
                field="path", allowed=self.resources.supported_model_types,
            )
        self.store.execute(
            "INSERT INTO models(id, path, architecture, source, created_at) VALUES (?, ?, ?, ?, ?)",
            (model_id, str(folder), model_type, source, time.time()),
        )
        return self.get(model_id)

    def delete(self, model_id: str, in_use_by: list[str]) -> None:
        model = self.get(model_id)
        if model["source"] == "bundled":
            raise Conflict(f"model {model_id!r} is bundled with the app and cannot be removed")
        if in_use_by:
            raise Conflict(f"model {model_id!r} is used by active job(s) {', '.join(in_use_by)}")
        self.store.execute("DELETE FROM models WHERE id = ?", (model_id,))
        # Registered folders belong to the user: only folders we created by merging are deleted.
        path = Path(model["path"])
        if model["source"] == "merged" and path.parent == self.merged_folder.resolve():
            shutil.rmtree(path, ignore_errors=True)
