"""The read-only files every build carries: LoRA presets, default settings, sample data, the tiny model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from backend.safe_io import NotARegularFile, hash_file

BUNDLED_MODEL_ID = "tiny-llama"
SAMPLE_DATASET_FILE = "sample-instructions.jsonl"
# What the model probe finds in the bundled model (scripts/make_resources.py writes it; a test compares it
# with a live probe): the bundled model is ready to train without a probe in every fresh data dir.
BUNDLED_MODEL_FACTS = f"{BUNDLED_MODEL_ID}.facts.json"

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
    f"models/{BUNDLED_MODEL_FACTS}",
)


@dataclass(frozen=True)
class LoraPreset:
    """LoRA settings for a model family where we know better than the defaults (``presets/lora-presets.json``)."""

    name: str
    model_types: tuple[str, ...]
    target_modules: tuple[str, ...] | None  # None: peft's default for the model type
    r: int
    alpha: int
    dropout: float

    def as_overrides(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {"r": self.r, "alpha": self.alpha, "dropout": self.dropout}
        if self.target_modules:
            overrides["target_modules"] = list(self.target_modules)
        return overrides


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
    def presets(self) -> dict[str, LoraPreset]:
        raw = self._json("presets/lora-presets.json")["families"]
        return {
            name: LoraPreset(
                name=name,
                model_types=tuple(spec["model_types"]),
                target_modules=tuple(spec["target_modules"]) if spec.get("target_modules") else None,
                r=int(spec["r"]),
                alpha=int(spec["alpha"]),
                dropout=float(spec["dropout"]),
            )
            for name, spec in raw.items()
        }

    def preset_for_model_type(self, model_type: str) -> LoraPreset | None:
        for preset in self.presets.values():
            if model_type in preset.model_types:
                return preset
        return None

    @cached_property
    def bundled_model_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = self._json(f"models/{BUNDLED_MODEL_FACTS}")
        return facts

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
        """Size and sha256 of bundled files; paths outside the bundle are reported, never read. Each file
        is hashed in fixed-size chunks, and only regular files are opened: a FIFO, device or socket in
        the bundle is reported, never read (nothing here can block a thread or fill the memory)."""
        root = self.bundle_root.resolve()
        report = []
        for relative in relative_paths:
            entry: dict[str, Any] = {"path": relative, "ok": False}
            try:
                candidate = (root / relative).resolve()
            except (OSError, ValueError, RuntimeError) as exc:
                entry["error"] = f"invalid path: {type(exc).__name__}"
                report.append(entry)
                continue
            if root not in candidate.parents:
                entry["error"] = "outside the bundle"
            else:
                try:
                    size, digest = hash_file(candidate)
                    entry.update(ok=True, bytes=size, sha256=digest)
                except NotARegularFile:
                    entry["error"] = "not a regular file"
                except (OSError, ValueError) as exc:
                    entry["error"] = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or 'unreadable'}"
            report.append(entry)
        return report

    def check_files(self) -> list[dict[str, Any]]:
        """Presence and readability of every required file (for /api/system and verification)."""
        report = []
        for relative in REQUIRED_RESOURCE_FILES:
            path = self.root / relative
            entry: dict[str, Any] = {"path": relative, "ok": False, "bytes": None}
            try:
                entry["bytes"], _ = hash_file(path)
                entry["ok"] = entry["bytes"] > 0
            except (OSError, NotARegularFile) as exc:
                entry["error"] = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            report.append(entry)
        return report
