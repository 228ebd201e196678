"""Bundled resources exist, parse, and the sample dataset is reproducible from its script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from backend.runtime_paths import current_layout
from backend.services.datasets import validate_jsonl
from backend.services.resources import REQUIRED_RESOURCE_FILES, BundledResources
from backend_client.manager import REPO_ROOT


def test_required_files_present() -> None:
    resources = BundledResources(current_layout().resources)
    report = resources.check_files()
    assert [entry["path"] for entry in report] == list(REQUIRED_RESOURCE_FILES)
    assert all(entry["ok"] for entry in report), report


def test_presets_are_consistent() -> None:
    resources = BundledResources(current_layout().resources)
    seen: set[str] = set()
    for preset in resources.presets.values():
        assert not seen & set(preset.model_types), f"a model type in two presets: {preset.name}"
        seen |= set(preset.model_types)
        assert preset.r >= 1 and preset.alpha >= 1 and 0 <= preset.dropout < 1
    config = json.loads((resources.bundled_model_dir / "config.json").read_text())
    facts = resources.bundled_model_facts
    preset = resources.preset_for_model_type(config["model_type"])
    assert preset is not None and set(preset.target_modules or ()) <= set(facts["linear_modules"])


def test_sample_dataset_is_valid_and_reproducible(tmp_path: Path) -> None:
    resources = BundledResources(current_layout().resources)
    report = validate_jsonl(resources.sample_dataset, max_lines=10_000)
    assert not report.errors and report.records >= 200
    subprocess.run([sys.executable, "scripts/make_resources.py", "--out", str(tmp_path), "--dataset-only"],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    regenerated = tmp_path / "datasets" / resources.sample_dataset.name
    assert regenerated.read_bytes() == resources.sample_dataset.read_bytes()
