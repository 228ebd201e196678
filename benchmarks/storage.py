"""Result files (written atomically, loaded with a version check), the run history and the baseline."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from benchmarks.schema import SchemaError, upgrade
from compile.results import write_json_atomic

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"


def write_json(path: Path, data: Any) -> Path:
    write_json_atomic(path, data)
    return path


def select(document: dict[str, Any], label: str) -> dict[str, Any]:
    """The variants measured as ``label/<variant>`` (``""``: the unlabelled ones), named by variant."""
    selected = {}
    for name, data in document["variants"].items():
        owner, _, kind = name.rpartition("/")
        if owner == label:
            selected[kind] = data
    return {**document, "variants": selected}


def load_results(path: Path | str) -> dict[str, Any]:
    """A result file; ``results.json#base`` selects the variants labelled ``base/`` (measured in the same
    run from another checkout) and ``results.json`` alone the unlabelled ones."""
    text = str(path)
    file, _, label = text.partition("#")
    try:
        document = upgrade(json.loads(Path(file).read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{file}: no such result file (run: python -m benchmarks run --quick)") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{file} is not a result file (not JSON: {exc})") from exc
    selected = select(document, label)
    if label and not selected["variants"]:
        raise ValueError(f"{file} has no variants labelled {label!r}")
    return selected


def baseline_path(machine_key: str | None = None) -> Path:
    """One committed baseline per platform and architecture: ``benchmarks/baseline/linux-x86_64.json``."""
    key = machine_key or f"{sys.platform}-{platform.machine()}"
    return BASELINE_DIR / f"{key}.json"


def append_history(path: Path, results: dict[str, Any]) -> None:
    """One JSON line per run; the raw samples stay in the run's own result file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(results, sort_keys=True) + "\n")


def load_history(path: Path, limit: int = 50) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines()[-limit:]:
        try:
            runs.append(upgrade(json.loads(line)))
        except (ValueError, json.JSONDecodeError):
            continue  # a torn or foreign line must not hide the rest of the history
    return runs
