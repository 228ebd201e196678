"""``python -m benchmarks run``: every present variant, interleaved round by round, warm-up discarded.

One round launches each variant warm (startup, idle memory, shutdown; a short training job in the
rounds that measure it), then each variant once more with the startup release off
(``PEFT_ENGINE_RELEASE_STARTUP_MEMORY=0``: idle memory as on an OS without it), then each variant cold
(its files evicted from the page cache first), then the calibration process. Nuitka onefile also
gets a first launch with an empty extraction cache every round. The order of variants rotates from
round to round so that no variant always runs right after the same neighbour. Every sample records
its round, so head and base pair by round.

Rounds are adaptive when the run is compared with something (another checkout measured beside this
one, or a stored baseline): after the minimum, a round is added while a gated metric is undecided
(its interval straddles the threshold), up to the maximum or the time cap. The result says how many
rounds ran, why they stopped, and what stayed undecided.

Startup instructions (callgrind) are counted once per variant: they are deterministic.
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from backend.memory_release import SWITCH_ENV as RELEASE_ENV
from backend.variants import NAMES
from benchmarks.gate import compare, undecided
from benchmarks.measure import instructions
from benchmarks.measure.cache import evict
from benchmarks.measure.calibration import calibration_seconds
from benchmarks.measure.launch import (
    IDLE_SETTLE_S,
    LaunchError,
    Running,
    first_training_step,
    idle_memory,
    launch,
    stop,
)
from benchmarks.measure.size import compressed_bytes, disk_bytes
from benchmarks.schema import SCHEMA_VERSION
from benchmarks.storage import select
from benchmarks.variants import Measured, discover
from compile.results import git_commit


@dataclass(frozen=True)
class RunOptions:
    rounds: int = 7  # the minimum; adaptive runs may add rounds up to max_rounds
    max_rounds: int = 20
    time_cap_s: float = 1800.0  # adaptive rounds stop here (the minimum always runs)
    warmup: int = 1
    train_rounds: int = 3  # the first N measured rounds also time a training job
    cold: bool = True
    compression_level: int = 6
    instructions: str = "auto"  # auto: source and folder builds (a onefile unpacks under valgrind); all; none
    quick: bool = False

    @classmethod
    def quick_profile(cls) -> RunOptions:
        return cls(rounds=5, max_rounds=12, time_cap_s=600.0, warmup=1, train_rounds=1, cold=True,
                   compression_level=1, quick=True)


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
    """State of one run: a data dir per variant, for Nuitka onefile its extraction cache, the samples."""

    def __init__(self, variants: list[Measured], scratch: Path, log: Callable[[str], None]):
        self.variants = variants
        self.scratch = scratch
        self.log = log
        self.round = -1
        self.results: dict[str, dict[str, Any]] = {
            v.name: {"samples": {}, "rounds": {}, "errors": [], "build": _build_summary(v)} for v in variants}
        self.calibration: dict[str, list[Any]] = {"samples": [], "rounds": []}

    def env_for(self, variant: Measured, fresh_cache: bool = False) -> dict[str, str]:
        # Nuitka onefile unpacks to {CACHE_DIR}/...: pointing XDG_CACHE_HOME here lets us empty it at will.
        cache = self.scratch / "xdg-cache" / variant.name
        if fresh_cache and cache.exists():
            shutil.rmtree(cache)
        cache.mkdir(parents=True, exist_ok=True)
        return {"XDG_CACHE_HOME": str(cache), "TMPDIR": str(self.scratch / "tmp")}

    def start(self, variant: Measured, metric: str, env: dict[str, str]) -> Running | None:
        """Launch ``variant`` with its own data dir; a launch that fails is recorded against ``metric``."""
        data_dir = self.scratch / "data" / variant.name
        data_dir.mkdir(parents=True, exist_ok=True)
        (self.scratch / "tmp").mkdir(exist_ok=True)
        try:
            return launch(variant.command, cwd=variant.cwd, data_dir=data_dir, env=env)
        except LaunchError as exc:
            self.results[variant.name]["errors"].append(f"{metric}: {exc}")
            self.log(f"    {variant.name}: {exc}")
            return None

    def measure_unreleased(self, variant: Measured) -> None:
        """Idle PSS with the startup release off: what a build keeps where the release does not exist
        (it is Linux-only), so the bytecode and binary pages that startup touched all count."""
        metric = "idle_pss_unreleased_bytes"
        running = self.start(variant, metric, {**self.env_for(variant), RELEASE_ENV: "0"})
        if running is None:
            return
        try:
            self.add(variant, metric, idle_memory(running).pss)
        except LaunchError as exc:
            self.results[variant.name]["errors"].append(f"{metric}: {exc}")
        finally:
            stop(running)

    def add(self, variant: Measured, metric: str, value: float) -> None:
        result = self.results[variant.name]
        result["samples"].setdefault(metric, []).append(value)
        result["rounds"].setdefault(metric, []).append(self.round)

    def launch_once(self, variant: Measured, *, record: bool, metric: str, train: bool = False,
                    fresh_cache: bool = False) -> None:
        running = self.start(variant, metric, self.env_for(variant, fresh_cache))
        if running is None:
            return
        try:
            if not record:
                return
            self.add(variant, metric, running.startup_s)
            if metric != "startup_warm_s":
                return
            if running.startup_blocked_s is not None:
                self.add(variant, "startup_blocked_s", running.startup_blocked_s)
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
                # after a training step the ML stack is loaded: what a stop costs once the app was used
                self.add(variant, "shutdown_after_ml_s" if train else "shutdown_s", took)

    def measure_round(self, index: int, options: RunOptions) -> None:
        self.round = index
        shift = index % len(self.variants)
        order = self.variants[shift:] + self.variants[:shift]
        train = index < options.train_rounds
        for variant in order:
            self.launch_once(variant, record=True, metric="startup_warm_s", train=train)
        for variant in order:
            self.measure_unreleased(variant)
        if options.cold:
            for variant in order:
                evict(list(variant.files))
                self.launch_once(variant, record=True, metric="startup_cold_s")
        for variant in order:
            if variant.kind == "nuitka-onefile":
                self.launch_once(variant, record=True, metric="startup_first_s", fresh_cache=True)
        self.calibration["samples"].append(calibration_seconds())
        self.calibration["rounds"].append(index)

    def count_instructions(self, options: RunOptions) -> None:
        if options.instructions == "none" or not instructions.available():
            if options.instructions != "none":
                self.log("  startup instructions: valgrind is not installed, not counted (apt-get install valgrind)")
            return
        for variant in self.variants:
            if options.instructions == "auto" and variant.variant.onefile:
                continue  # under valgrind a onefile unpacks its whole payload: minutes
            try:
                count, seconds = instructions.count_startup_instructions(variant.command, cwd=variant.cwd)
            except instructions.InstructionCountError as exc:
                self.results[variant.name]["errors"].append(f"startup_instructions: {exc}")
                self.log(f"    {variant.name}: {exc}")
                continue
            self.results[variant.name]["startup_instructions"] = count
            self.log(f"  startup instructions {variant.name}: {count / 1e6:,.1f} M ({seconds:.0f}s under callgrind)")


def _build_summary(variant: Measured) -> dict[str, Any] | None:
    record = variant.build
    if not record:
        return None
    report = record.get("nuitka_report") or {}
    return {"wall_seconds": record.get("wall_seconds"), "cpu_seconds": record.get("tool_cpu_seconds"),
            "tool_version": record.get("tool_version"), "ccache": report.get("ccache")}


Decider = Callable[[dict[str, Any]], list[str]]  # results so far -> what is still undecided


def against_labels(labels: list[str], metrics: tuple[str, ...] | None = None) -> Decider:
    """Undecided metrics (all gated ones, or ``metrics``) of this run's head against each labelled
    checkout measured beside it."""
    def decide(results: dict[str, Any]) -> list[str]:
        head = select(results, "")
        return [f"{finding.variant} {finding.metric} (vs {label})" for label in labels
                for finding in undecided(compare(select(results, label), head, metrics=metrics))]
    return decide


def against_baseline(baseline: dict[str, Any]) -> Decider:
    def decide(results: dict[str, Any]) -> list[str]:
        return [f"{finding.variant} {finding.metric}" for finding in undecided(compare(baseline, select(results, "")))]
    return decide


def run_benchmarks(checkouts: dict[str | None, Path], options: RunOptions, names: tuple[str, ...] = NAMES, *,
                   dists: dict[str | None, Path] | None = None, decider: Decider | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure the variants of each checkout (``None``: this one, unlabelled; others as ``label/...``)."""
    variants: list[Measured] = []
    missing: dict[str, str] = {}
    for label, root in checkouts.items():
        found, absent = discover(root, names, dist_dir=(dists or {}).get(label), label=label)
        variants += found
        missing.update(absent)
    for name, command in missing.items():
        log(f"  {name}: not built, not measured (build it with: {command})")
    if not variants:
        raise LaunchError("nothing to measure")
    root = checkouts.get(None) or next(iter(checkouts.values()))
    started = time.time()
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": uuid.uuid4().hex, "created_at": started,
        "commit": git_commit(root), "machine": machine(), "versions": versions(root),
        "options": {"rounds": options.rounds, "max_rounds": options.max_rounds, "time_cap_s": options.time_cap_s,
                    "warmup": options.warmup, "train_rounds": options.train_rounds, "cold": options.cold,
                    "compression_level": options.compression_level, "instructions": options.instructions,
                    "quick": options.quick},
        "missing": missing,
    }
    with tempfile.TemporaryDirectory(prefix="peft-bench-") as scratch:
        session = Session(variants, Path(scratch), log)
        document["variants"], document["calibration"] = session.results, session.calibration
        for variant in variants:
            log(f"  sizing {variant.name}")
            if variant.size_root is not None:
                result = session.results[variant.name]
                result["size_bytes"] = disk_bytes(variant.size_root)
                result["compressed_bytes"] = compressed_bytes(variant.size_root, options.compression_level)
        session.count_instructions(options)
        for index in range(options.warmup):
            log(f"  warm-up {index + 1}/{options.warmup}")
            for variant in variants:
                session.launch_once(variant, record=False, metric="warmup")
        rounds_started = time.monotonic()
        stop_reason, pending = "fixed rounds", []
        for index in range(options.max_rounds if decider else options.rounds):
            log(f"  round {index + 1}: {', '.join(v.name for v in variants)}")
            session.measure_round(index, options)
            if decider is None or index + 1 < options.rounds:
                continue
            pending = decider(document)
            if not pending:
                stop_reason = "every gated metric decided"
                break
            if time.monotonic() - rounds_started > options.time_cap_s:
                stop_reason = f"time cap ({options.time_cap_s:.0f}s)"
                break
            log(f"    undecided: {', '.join(pending)}")
        else:
            if decider is not None:
                stop_reason = f"max rounds ({options.max_rounds})"
        document["adaptive"] = {"rounds": session.round + 1, "stop_reason": stop_reason, "undecided": pending,
                                "adaptive": decider is not None}
    document["duration_s"] = round(time.time() - started, 1)
    return document


