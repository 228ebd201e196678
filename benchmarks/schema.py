"""The result file: every raw sample, plus what is needed to recompute or question it later.

Format history (``schema_version``):

1. ``variants[name].samples[metric] = [float, ...]``, scalars ``size_bytes``, ``compressed_bytes``,
   ``build``; ``machine``, ``versions``, ``commit``, ``options``, ``missing``.
2. adds ``run_id`` (one per run: two selections of one file are the same run, so their samples pair
   by round), ``variants[name].rounds[metric]`` (the round of each sample), the scalar
   ``startup_instructions``, ``calibration`` (a process whose code never changes with the project,
   timed every round) and ``adaptive`` (rounds run, why the run stopped, what stayed undecided).

Older files load through :func:`upgrade` (a version 1 file: samples numbered in order, no run id);
newer ones are refused with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SCHEMA_VERSION = 2

Gate = Literal["both", "same-run", "report"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: Literal["s", "bytes", "instructions"]
    kind: Literal["sample", "scalar"]
    threshold: float  # increase that counts as a regression: relative, or in the unit when ``absolute``
    gate: Gate = "both"  # "same-run": only head against base measured interleaved in one run
    headline: bool = False
    absolute: bool = False  # compared as a difference (a few milliseconds have no meaningful ratio)


METRICS: dict[str, Metric] = {m.name: m for m in (
    # Wall-clock: decided only head against base in one run, paired by round. Against a stored
    # baseline it is reported, normalized by the calibration process, never gated.
    Metric("startup_warm_s", "startup (warm)", "s", "sample", 0.04, "same-run", headline=True),
    Metric("startup_cold_s", "startup (cold)", "s", "sample", 0.10, "same-run"),
    # Startup minus the tree's on-CPU and run-queue time: waiting on I/O, locks, sleeps. Stable within
    # a millisecond or two where the CPU part moves 10-40 %: a regression that waits shows here.
    Metric("startup_blocked_s", "startup, waiting off-CPU", "s", "sample", 0.010, absolute=True),
    Metric("startup_first_s", "first launch (empty onefile cache)", "s", "sample", 0.15, "same-run"),
    # Deterministic CPU work from spawn to the ready line (callgrind): repeats within 0.001 %.
    Metric("startup_instructions", "startup instructions (callgrind)", "instructions", "scalar", 0.01),
    Metric("idle_pss_bytes", "idle PSS (tree)", "bytes", "sample", 0.03, headline=True),
    Metric("idle_uss_bytes", "idle USS (tree)", "bytes", "sample", 0.03),
    # The same with the startup release off (it exists on Linux only): what macOS and Windows users get.
    Metric("idle_pss_unreleased_bytes", "idle PSS, startup release off (tree)", "bytes", "sample", 0.03),
    Metric("idle_rss_bytes", "idle RSS (tree, double-counts shared pages)", "bytes", "sample", 0.10, "report"),
    Metric("peak_hwm_bytes", "peak RSS (VmHWM, tree)", "bytes", "sample", 0.10, "report"),
    Metric("first_step_s", "time to first training step", "s", "sample", 0.15, "same-run"),
    Metric("train_peak_pss_bytes", "PSS while training (tree)", "bytes", "sample", 0.05, "same-run"),
    Metric("after_train_pss_bytes", "PSS after training (tree)", "bytes", "sample", 0.05, "same-run"),
    Metric("shutdown_s", "graceful shutdown (idle)", "s", "sample", 0.25, "report"),
    Metric("shutdown_after_ml_s", "graceful shutdown after training (SIGTERM to exit)", "s", "sample", 0.25, "report"),
    Metric("size_bytes", "size on disk", "bytes", "scalar", 0.02, headline=True),
    Metric("compressed_bytes", "size compressed", "bytes", "scalar", 0.02),
    Metric("build_wall_s", "build wall time", "s", "scalar", 0.50, "report", headline=True),
    Metric("build_cpu_s", "build CPU time", "s", "scalar", 0.50, "report"),
)}

SCALAR_KEYS = {"build_wall_s": "wall_seconds", "build_cpu_s": "cpu_seconds"}


class SchemaError(ValueError):
    pass


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("schema_version")
    if version == SCHEMA_VERSION:
        return document
    if not isinstance(version, int):
        raise SchemaError("not a benchmark result file (no schema_version)")
    if version == 1:
        variants = {}
        for name, variant in document.get("variants", {}).items():
            rounds = {metric: list(range(len(values))) for metric, values in variant.get("samples", {}).items()}
            variants[name] = {**variant, "rounds": rounds}
        return {**document, "schema_version": SCHEMA_VERSION, "run_id": None, "variants": variants}
    raise SchemaError(f"result schema {version} is newer than this tool's {SCHEMA_VERSION}: update peft-engine")


def scalar(variant: dict[str, Any], metric: str) -> float | None:
    if metric in ("size_bytes", "compressed_bytes", "startup_instructions"):
        value = variant.get(metric)
    else:
        build = variant.get("build") or {}
        value = build.get(SCALAR_KEYS.get(metric, metric))
    return float(value) if value is not None else None


def samples(variant: dict[str, Any], metric: str) -> list[float]:
    return [float(v) for v in variant.get("samples", {}).get(metric, [])]


def rounds(variant: dict[str, Any], metric: str) -> list[int]:
    values = variant.get("samples", {}).get(metric, [])
    return list(variant.get("rounds", {}).get(metric, range(len(values))))


def paired(head: dict[str, Any], base: dict[str, Any], metric: str) -> tuple[list[float], list[float]]:
    """The samples of one metric that both variants have in the same rounds, in round order."""
    by_round = dict(zip(rounds(base, metric), samples(base, metric), strict=True))
    pairs = [(value, by_round[index]) for index, value in zip(rounds(head, metric), samples(head, metric), strict=True)
             if index in by_round]
    return [h for h, _ in pairs], [b for _, b in pairs]
