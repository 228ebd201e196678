"""``python -m benchmarks run``: every present variant, interleaved round by round, warm-up discarded.

One round launches each variant warm (startup, idle memory, shutdown; a short training job in the
rounds that measure it), then each variant cold (its files evicted from the page cache first). Nuitka
onefile also gets a first launch with an empty extraction cache every round. The order of variants
rotates from round to round so that no variant always runs right after the same neighbour.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from backend.variants import NAMES
from benchmarks.measure.cache import evict
from benchmarks.measure.launch import IDLE_SETTLE_S, LaunchError, first_training_step, idle_memory, launch, stop
from benchmarks.measure.size import compressed_bytes, disk_bytes
from benchmarks.schema import SCHEMA_VERSION
from benchmarks.variants import Measured, discover
from compile.results import git_commit


@dataclass(frozen=True)
class RunOptions:
    rounds: int = 7
    warmup: int = 1
    train_rounds: int = 3  # the first N measured rounds also time a training job
    cold: bool = True
    compression_level: int = 6
    quick: bool = False

    @classmethod
    def quick_profile(cls) -> RunOptions:
        return cls(rounds=5, warmup=1, train_rounds=1, cold=True, compression_level=1, quick=True)


def versions(root: Path) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "fastapi", "uvicorn"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    for record in (root / "dist").glob("*/build.json"):
        data = json.loads(record.read_text(encoding="utf-8"))
        found[data["tool"]] = data.get("tool_version")
    return found


def machine() -> dict[str, Any]:
    return {"platform": sys.platform, "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total, "kernel": platform.release(),
            "processor": platform.processor() or None}


class Session:
    """State of one run: a data dir per variant and, for Nuitka onefile, its extraction cache."""

    def __init__(self, variants: list[Measured], scratch: Path, log: Callable[[str], None]):
        self.variants = variants
        self.scratch = scratch
        self.log = log
        self.results: dict[str, dict[str, Any]] = {
            v.name: {"samples": {}, "errors": [], "build": _build_summary(v)} for v in variants}

    def env_for(self, variant: Measured, fresh_cache: bool = False) -> dict[str, str]:
        # Nuitka onefile unpacks to {CACHE_DIR}/...: pointing XDG_CACHE_HOME here lets us empty it at will.
        cache = self.scratch / "xdg-cache" / variant.name
        if fresh_cache and cache.exists():
            shutil.rmtree(cache)
        cache.mkdir(parents=True, exist_ok=True)
        return {"XDG_CACHE_HOME": str(cache), "TMPDIR": str(self.scratch / "tmp")}

    def add(self, variant: Measured, metric: str, value: float) -> None:
        self.results[variant.name]["samples"].setdefault(metric, []).append(value)

    def launch_once(self, variant: Measured, *, record: bool, metric: str, train: bool = False,
                    fresh_cache: bool = False) -> None:
        data_dir = self.scratch / "data" / variant.name
        data_dir.mkdir(parents=True, exist_ok=True)
        (self.scratch / "tmp").mkdir(exist_ok=True)
        try:
            running = launch(variant.command, cwd=variant.cwd, data_dir=data_dir,
                             env=self.env_for(variant, fresh_cache))
        except LaunchError as exc:
            self.results[variant.name]["errors"].append(f"{metric}: {exc}")
            self.log(f"    {variant.name}: {exc}")
            return
        try:
            if not record:
                return
            self.add(variant, metric, running.startup_s)
            if metric != "startup_warm_s":
                return
            idle = idle_memory(running)
            for name, value in (("idle_pss_bytes", idle.pss), ("idle_uss_bytes", idle.uss),
                                ("idle_rss_bytes", idle.rss), ("peak_hwm_bytes", idle.hwm)):
                self.add(variant, name, value)
            if train:
                seconds, peak = first_training_step(running)
                self.add(variant, "first_step_s", seconds)
                self.add(variant, "train_peak_pss_bytes", peak.pss)
                time.sleep(IDLE_SETTLE_S)
                self.add(variant, "after_train_pss_bytes", running.memory().pss)
        except LaunchError as exc:
            self.results[variant.name]["errors"].append(f"{metric}: {exc}")
        finally:
            took = stop(running)
            if record and metric == "startup_warm_s":
                self.add(variant, "shutdown_s", took)


def _build_summary(variant: Measured) -> dict[str, Any] | None:
    record = variant.build
    if not record:
        return None
    report = record.get("nuitka_report") or {}
    return {"wall_seconds": record.get("wall_seconds"), "cpu_seconds": record.get("tool_cpu_seconds"),
            "tool_version": record.get("tool_version"), "ccache": report.get("ccache")}


def run_benchmarks(root: Path, options: RunOptions, names: tuple[str, ...] = NAMES,
                   log: Callable[[str], None] = print, also: dict[str, Path] | None = None) -> dict[str, Any]:
    variants, missing = discover(root, names)
    for label, dist in (also or {}).items():
        extra, extra_missing = discover(root, names, dist_dir=dist, label=label)
        variants += extra
        missing.update(extra_missing)
    for name, command in missing.items():
        log(f"  {name}: not built, not measured (build it with: {command})")
    if not variants:
        raise LaunchError("nothing to measure")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="peft-bench-") as scratch:
        session = Session(variants, Path(scratch), log)
        for variant in variants:
            log(f"  sizing {variant.name}")
            if variant.size_root is not None:
                result = session.results[variant.name]
                result["size_bytes"] = disk_bytes(variant.size_root)
                result["compressed_bytes"] = compressed_bytes(variant.size_root, options.compression_level)
        for index in range(options.warmup):
            log(f"  warm-up {index + 1}/{options.warmup}")
            for variant in variants:
                session.launch_once(variant, record=False, metric="warmup")
        for round_index in range(options.rounds):
            shift = round_index % len(variants)
            order = variants[shift:] + variants[:shift]
            train = round_index < options.train_rounds
            log(f"  round {round_index + 1}/{options.rounds}: {', '.join(v.name for v in order)}")
            for variant in order:
                session.launch_once(variant, record=True, metric="startup_warm_s", train=train)
            if options.cold:
                for variant in order:
                    evict(list(variant.files))
                    session.launch_once(variant, record=True, metric="startup_cold_s")
            for variant in order:
                if variant.kind == "nuitka-onefile":
                    session.launch_once(variant, record=True, metric="startup_first_s", fresh_cache=True)
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": started,
        "duration_s": round(time.time() - started, 1),
        "commit": git_commit(root),
        "machine": machine(),
        "versions": versions(root),
        "options": {"rounds": options.rounds, "warmup": options.warmup, "train_rounds": options.train_rounds,
                    "cold": options.cold, "compression_level": options.compression_level, "quick": options.quick},
        "missing": missing,
        "variants": session.results,
    }
