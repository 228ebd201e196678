"""Synthetic result files with known properties, for the statistics, gate and report tests."""

from __future__ import annotations

import numpy as np

from benchmarks.schema import SCHEMA_VERSION


def noisy(center: float, n: int, spread: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 6) for v in center * (1 + rng.uniform(-spread, spread, n))]


def result(variants: dict[str, dict[str, float]], n: int = 9, spread: float = 0.02, seed: int = 1) -> dict:
    body = {}
    for index, (name, centers) in enumerate(variants.items()):
        samples = {metric: noisy(value, n, spread, seed * 100 + index * 10 + position)
                   for position, (metric, value) in enumerate(centers.items()) if metric.endswith(("_s", "_pss_bytes"))}
        body[name] = {"samples": samples, "errors": [], "size_bytes": centers.get("size_bytes"),
                      "compressed_bytes": centers.get("compressed_bytes"),
                      "build": {"wall_seconds": centers.get("build"), "cpu_seconds": None}}
    return {"schema_version": SCHEMA_VERSION, "created_at": 0, "duration_s": 1, "commit": "abc1234def",
            "machine": {"platform": "linux", "machine": "x86_64", "cpu_count": 2, "memory_bytes": 24 * 1024**3},
            "versions": {"python": "3.11.7", "nuitka": "4.3.3"},
            "options": {"rounds": n, "quick": False}, "missing": {}, "variants": body}


BASE = {"startup_warm_s": 4.0, "idle_pss_bytes": 50e6, "size_bytes": 900e6, "build": 300}
NUITKA = {"startup_warm_s": 0.35, "idle_pss_bytes": 45e6, "size_bytes": 1200e6, "build": 500}


def pair(nuitka_startup_factor: float = 1.0, spread: float = 0.02, n: int = 9, seed: int = 1) -> dict:
    nuitka = {**NUITKA, "startup_warm_s": NUITKA["startup_warm_s"] * nuitka_startup_factor}
    return result({"pyinstaller-onefile": BASE, "nuitka-standalone": nuitka}, n=n, spread=spread, seed=seed)
