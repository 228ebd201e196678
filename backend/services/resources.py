"""The read-only files every build carries: LoRA presets, default settings, sample data, the tiny model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

BUNDLED_MODEL_ID = "tiny-llama"
SAMPLE_DATASET_FILE = "sample-instructions.jsonl"

# Every file a build must carry, relative to the resources folder. `compile verify` and the tests
# check these exist and are readable inside each artifact.
REQUIRED_RESOURCE_FILES = (
    "defaults.json",
    "presets/lora-presets.json",
    f"datasets/{SAMPLE_DATASET_FILE}",
    f"models/{BUNDLED_MODEL_ID}/config.json",
    f"models/{BUNDLED_MODEL_ID}/generation_config.json",
    f"models/{BUNDLED_MODEL_ID}/model.safetensors",
    f"models/{BUNDLED_MODEL_ID}/tokenizer.json",
    f"models/{BUNDLED_MODEL_ID}/tokenizer_config.json",
)


@dataclass(frozen=True)
class ArchitecturePreset:
    name: str
    model_types: tuple[str, ...]
    available_target_modules: tuple[str, ...]
    default_target_modules: tuple[str, ...]
    r: int
    alpha: int
    dropout: float


class BundledResources:
    def __init__(self, root: Path):
        self.root = root

    def _json(self, relative: str) -> Any:
        with (self.root / relative).open(encoding="utf-8") as handle:
            return json.load(handle)

    @cached_property
    def defaults(self) -> dict[str, Any]:
        data: dict[str, Any] = self._json("defaults.json")
        return data

    @cached_property
    def presets(self) -> dict[str, ArchitecturePreset]:
        raw = self._json("presets/lora-presets.json")["architectures"]
        return {
            name: ArchitecturePreset(
                name=name,
                model_types=tuple(spec["model_types"]),
                available_target_modules=tuple(spec["available_target_modules"]),
                default_target_modules=tuple(spec["default_target_modules"]),
                r=int(spec["r"]),
                alpha=int(spec["alpha"]),
                dropout=float(spec["dropout"]),
            )
            for name, spec in raw.items()
        }

    def preset_for_model_type(self, model_type: str) -> ArchitecturePreset | None:
        for preset in self.presets.values():
            if model_type in preset.model_types:
                return preset
        return None

    @property
    def supported_model_types(self) -> list[str]:
        return sorted({t for preset in self.presets.values() for t in preset.model_types})

    @property
    def bundled_model_dir(self) -> Path:
        return self.root / "models" / BUNDLED_MODEL_ID

    @property
    def sample_dataset(self) -> Path:
        return self.root / "datasets" / SAMPLE_DATASET_FILE

    @property
    def bundle_root(self) -> Path:
        return self.root.parent.parent  # <bundle>/backend/resources

    def inspect(self, relative_paths: list[str]) -> list[dict[str, Any]]:
        """Size and sha256 of bundled files; paths outside the bundle are reported, never read."""
        root = self.bundle_root.resolve()
        report = []
        for relative in relative_paths:
            entry: dict[str, Any] = {"path": relative, "ok": False}
            try:
                candidate = (root / relative).resolve()
            except (OSError, ValueError, RuntimeError) as exc:
                entry["error"] = f"invalid path: {exc}"
                report.append(entry)
                continue
            if root not in candidate.parents:
                entry["error"] = "outside the bundle"
            else:
                try:
                    data = candidate.read_bytes()
                    entry.update(ok=True, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                except (OSError, ValueError) as exc:
                    entry["error"] = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            report.append(entry)
        return report

    def check_files(self) -> list[dict[str, Any]]:
        """Presence and readability of every required file (for /api/system and verification)."""
        report = []
        for relative in REQUIRED_RESOURCE_FILES:
            path = self.root / relative
            entry: dict[str, Any] = {"path": relative, "ok": False, "bytes": None}
            try:
                with path.open("rb") as handle:
                    entry["bytes"] = len(handle.read())
                entry["ok"] = entry["bytes"] > 0
            except OSError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            report.append(entry)
        return report
