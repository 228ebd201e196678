"""Base models: the bundled tiny model, models registered from local folders, and models made by merging.

Registering a folder reads it without torch (:mod:`backend.services.model_folder`, every read bounded),
then asks a model probe (:mod:`backend.services.model_probe`, a child process) whether transformers
and peft can train it. What the probe finds is cached per folder in the database, keyed by the folder's
fingerprint, so a folder is probed again only when its files change. The bundled model's facts ship
with it (``resources/models/tiny-llama.facts.json``).
"""

from __future__ import annotations

import builtins
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from backend.errors import Conflict, NotFound
from backend.names import check_name, name_key
from backend.safe_io import confined
from backend.services.job_config import ModelChoice
from backend.services.model_folder import FolderSummary, NotAModelFolder, inspect_folder
from backend.services.model_probe import ModelProber, portable
from backend.services.resources import BUNDLED_MODEL_ID, BundledResources
from backend.services.store import Store

log = logging.getLogger(__name__)

MODEL_COLUMNS = "id, path, architecture, source, created_at"


class ModelRegistry:
    def __init__(self, store: Store, resources: BundledResources, merged_folder: Path,
                 prober: ModelProber | None = None):
        self.store = store
        self.resources = resources
        self.merged_folder = merged_folder
        self.prober = prober or ModelProber()
        self._probe_lock = threading.Lock()  # one probe at a time: each is a process importing torch
        self._bundled_cache: dict[str, Any] | None = None

    # -- queries -----------------------------------------------------------------------------------
    def _bundled(self) -> dict[str, Any]:
        facts = self.resources.bundled_model_facts
        return {"id": BUNDLED_MODEL_ID, "path": str(self.resources.bundled_model_dir),
                "architecture": facts["model_type"], "source": "bundled", "created_at": None}

    def list(self) -> builtins.list[dict[str, Any]]:
        rows = self.store.query(f"SELECT {MODEL_COLUMNS} FROM models ORDER BY id")
        return [self._bundled(), *rows]

    def ids(self) -> builtins.list[str]:
        return [row["id"] for row in self.list()]

    def get(self, model_id: str, field: str | None = None) -> dict[str, Any]:
        if model_id == BUNDLED_MODEL_ID:
            return self._bundled()
        row = self.store.query_one(f"SELECT {MODEL_COLUMNS} FROM models WHERE id = ?", (model_id,))
        if row is None:
            message = f"model {model_id!r} not found"
            # referenced from a request body, ``field`` names it: 404 either way, as for a path
            raise NotFound(message, field=field, allowed=self.ids(), listed_at="/api/models")
        return row

    def describe(self, model: dict[str, Any]) -> dict[str, Any]:
        """The model with what is known of it (``details``: null until it has been probed)."""
        facts = self.cached_facts(model)
        return {**model, "details": _details(facts) if facts else None}

    # -- facts -------------------------------------------------------------------------------------
    def folder(self, model: dict[str, Any]) -> Path:
        """A model's folder for reading: one the server made (a merge, in the data dir) is proven to have
        no symbolic link on the way; one the user registered is theirs to arrange."""
        path = Path(model["path"])
        root = self.merged_folder.parent
        if path.is_relative_to(root):
            return confined(root, *path.relative_to(root).parts, field="model")
        return path

    def summary(self, model: dict[str, Any]) -> FolderSummary:
        """The folder as it is now (it is the user's: it may have changed or gone since registration)."""
        try:
            return inspect_folder(self.folder(model), shown=model["id"])
        except NotAModelFolder as exc:
            raise Conflict(f"the folder of model {model['id']!r} is gone or no longer a model folder "
                               f"({model['path']}): register it again", field="model") from exc

    def _bundled_facts(self) -> dict[str, Any]:
        if self._bundled_cache is None:
            folder = inspect_folder(self.resources.bundled_model_dir)
            self._bundled_cache = {**self.resources.bundled_model_facts, "folder": folder.to_dict()}
        return dict(self._bundled_cache)

    def cached_facts(self, model: dict[str, Any]) -> dict[str, Any] | None:
        if model["source"] == "bundled":
            return self._bundled_facts()
        row = self.store.query_one("SELECT fingerprint, facts FROM model_facts WHERE path = ?", (model["path"],))
        return json.loads(row["facts"]) if row else None

    def facts(self, model: dict[str, Any], summary: FolderSummary | None = None) -> dict[str, Any]:
        """What the probe found in the model's folder, probing it when its files changed."""
        if model["source"] == "bundled":
            return self._bundled_facts()
        summary = summary or self.summary(model)
        return self._facts_for(summary, model["id"])

    def _facts_for(self, summary: FolderSummary, shown: str) -> dict[str, Any]:
        path = str(summary.path)
        row = self.store.query_one("SELECT fingerprint, facts FROM model_facts WHERE path = ?", (path,))
        if row is not None and row["fingerprint"] == summary.fingerprint:
            facts: dict[str, Any] = json.loads(row["facts"])
            return facts
        with self._probe_lock:
            started = time.perf_counter()
            probed = self.prober.probe(summary.path, shown)
            log.info("probed model folder %s in %.1fs: %s, %s", path, time.perf_counter() - started,
                     probed["model_class"], probed["tokenizer_class"])
        facts = {**portable(probed), "folder": summary.to_dict()}
        self._cache_facts(summary, facts)
        return facts

    def _cache_facts(self, summary: FolderSummary, facts: dict[str, Any]) -> None:
        row = (str(summary.path), summary.fingerprint, json.dumps(facts), time.time())
        self.store.execute(
            "INSERT OR REPLACE INTO model_facts(path, fingerprint, facts, probed_at) VALUES (?, ?, ?, ?)", row)

    def choice(self, model: dict[str, Any]) -> ModelChoice:
        """What a job's config is resolved from (:func:`backend.services.job_config.resolve`)."""
        facts = self.facts(model)
        preset = self.resources.preset_for_model_type(facts["model_type"])
        return ModelChoice(id=model["id"], architecture=facts["model_type"],
                           linear_modules=tuple(facts["linear_modules"]),
                           preset=preset.as_overrides() if preset else {})

    # -- commands ----------------------------------------------------------------------------------
    def check_new_id(self, model_id: str) -> None:
        check_name(model_id)
        key = name_key(model_id)
        taken = next((row["id"] for row in self.list() if name_key(row["id"]) == key), None)
        if taken is not None:
            same = "already exists" if taken == model_id else f"differs from the existing model {taken!r} only by case"
            raise Conflict(f"model {model_id!r} {same}: pick another name", field="name")

    def register(self, model_id: str, folder_text: str, source: str = "local") -> dict[str, Any]:
        self.check_new_id(model_id)
        try:
            folder = Path(folder_text).expanduser().resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise NotAModelFolder(folder_text) from exc
        summary = inspect_folder(folder, shown=folder_text)
        facts = self._facts_for(summary, folder_text)
        self.check_new_id(model_id)  # another registration may have taken it while the probe ran
        self.store.execute(
            "INSERT INTO models(id, path, architecture, source, created_at) VALUES (?, ?, ?, ?, ?)",
            (model_id, str(folder), facts["model_type"], source, time.time()),
        )
        return self.describe(self.get(model_id))

    def register_merged(self, model_id: str, folder: Path, base_facts: dict[str, Any]) -> dict[str, Any]:
        """A model this server made by merging into a base: the same architecture and tokenizer as the base,
        so the base's facts hold (no probe), with the new folder's own summary and fingerprint."""
        self.check_new_id(model_id)
        summary = inspect_folder(folder, shown=model_id)
        facts = {**base_facts, "folder": summary.to_dict()}
        self._cache_facts(summary, facts)
        self.store.execute(
            "INSERT INTO models(id, path, architecture, source, created_at) VALUES (?, ?, ?, ?, ?)",
            (model_id, str(folder), facts["model_type"], "merged", time.time()),
        )
        return self.describe(self.get(model_id))

    def delete(self, model_id: str, in_use_by: builtins.list[str]) -> None:
        model = self.get(model_id)
        if model["source"] == "bundled":
            raise Conflict(f"model {model_id!r} is bundled with the app and cannot be removed")
        if in_use_by:
            raise Conflict(f"model {model_id!r} is used by active job(s) {', '.join(in_use_by)}")
        self.store.execute("DELETE FROM models WHERE id = ?", (model_id,))
        # Registered folders belong to the user: only folders we created by merging are deleted.
        path = Path(model["path"])
        if model["source"] == "merged" and path.parent == self.merged_folder:
            if path.is_symlink():  # planted: the link goes, never what it points to
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)


def _details(facts: dict[str, Any]) -> dict[str, Any]:
    folder = facts.get("folder", {})
    return {
        "model_class": facts.get("model_class"),
        "parameters": folder.get("parameters"),
        "weights_dtype": folder.get("weights_dtype"),
        "weight_format": folder.get("weight_format"),
        "tokenizer_class": facts.get("tokenizer_class"),
        "chat_template": facts.get("chat_template"),
        "linear_modules": facts.get("linear_modules"),
        "default_target_modules": facts.get("default_target_modules"),
    }
