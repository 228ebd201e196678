"""The result file: every raw sample, plus what is needed to recompute or question it later.

Format history (``schema_version``):
1. first version: ``variants[name].samples[metric] = [float, ...]``, scalars ``size_bytes``,
   ``compressed_bytes``, ``build``; ``machine``, ``versions``, ``commit``, ``options``, ``missing``.
Older files load through :func:`upgrade`; newer ones are refused with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SCHEMA_VERSION = 1

Direction = Literal["lower"]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: Literal["s", "bytes"]
    kind: Literal["sample", "scalar"]
    threshold: float  # relative change of the ratio to the baseline variant that counts as a regression
    headline: bool = False
    gated: bool = True  # build times depend on cache state (cold vs warm ccache): reported, not gated


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("startup_warm_s", "startup (warm)", "s", "sample", 0.10, headline=True),
    Metric("startup_cold_s", "startup (cold)", "s", "sample", 0.15),
    Metric("startup_first_s", "first launch (empty onefile cache)", "s", "sample", 0.15),
    Metric("idle_pss_bytes", "idle PSS (tree)", "bytes", "sample", 0.05, headline=True),
    Metric("idle_uss_bytes", "idle USS (tree)", "bytes", "sample", 0.05),
    Metric("idle_rss_bytes", "idle RSS (tree, double-counts shared pages)", "bytes", "sample", 0.10),
    Metric("peak_hwm_bytes", "peak RSS (VmHWM, tree)", "bytes", "sample", 0.10),
    Metric("first_step_s", "time to first training step", "s", "sample", 0.15),
    Metric("train_peak_pss_bytes", "PSS while training (tree)", "bytes", "sample", 0.10),
    Metric("after_train_pss_bytes", "PSS after training (tree)", "bytes", "sample", 0.10),
    Metric("shutdown_s", "graceful shutdown", "s", "sample", 0.25),
    Metric("size_bytes", "size on disk", "bytes", "scalar", 0.02, headline=True),
    Metric("compressed_bytes", "size compressed", "bytes", "scalar", 0.02),
    Metric("build_wall_s", "build wall time", "s", "scalar", 0.50, headline=True, gated=False),
    Metric("build_cpu_s", "build CPU time", "s", "scalar", 0.50, gated=False),
)}


class SchemaError(ValueError):
    pass


def upgrade(document: dict[str, Any]) -> dict[str, Any]:
    version = document.get("schema_version")
    if version == SCHEMA_VERSION:
        return document
    if not isinstance(version, int):
        raise SchemaError("not a benchmark result file (no schema_version)")
    raise SchemaError(f"result schema {version} is newer than this tool's {SCHEMA_VERSION}: update peft-engine")


def scalar(variant: dict[str, Any], metric: str) -> float | None:
    if metric in ("size_bytes", "compressed_bytes"):
        value = variant.get(metric)
    else:
        build = variant.get("build") or {}
        value = build.get({"build_wall_s": "wall_seconds", "build_cpu_s": "cpu_seconds"}.get(metric, metric))
    return float(value) if value is not None else None


def samples(variant: dict[str, Any], metric: str) -> list[float]:
    return [float(v) for v in variant.get("samples", {}).get(metric, [])]
