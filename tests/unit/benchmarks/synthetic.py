"""Synthetic result files with known properties, for the statistics, gate and report tests."""

from __future__ import annotations

import numpy as np

from benchmarks.schema import SCHEMA_VERSION

MACHINE = {"platform": "linux", "machine": "x86_64", "cpu_count": 2, "memory_bytes": 24 * 1024**3}


def noisy(center: float, n: int, spread: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 6) for v in center * (1 + rng.uniform(-spread, spread, n))]


def variant(centers: dict[str, float], n: int, spread: float, seed: int) -> dict:
    sampled = {metric: noisy(value, n, spread, seed + position)
               for position, (metric, value) in enumerate(centers.items()) if metric.endswith(("_s", "_pss_bytes"))}
    return {"samples": sampled, "rounds": {metric: list(range(n)) for metric in sampled}, "errors": [],
            "size_bytes": centers.get("size_bytes"), "compressed_bytes": centers.get("compressed_bytes"),
            "startup_instructions": centers.get("startup_instructions"),
            "build": {"wall_seconds": centers.get("build"), "cpu_seconds": None}}


def result(variants: dict[str, dict[str, float]], n: int = 9, spread: float = 0.02, seed: int = 1,
           run_id: str | None = None) -> dict:
    body = {name: variant(centers, n, spread, seed * 100 + index * 10) for index, (name, centers) in
            enumerate(variants.items())}
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id or f"run-{seed}", "created_at": 1_700_000_000 + seed,
            "duration_s": 1, "commit": "abc1234def", "machine": MACHINE,
            "versions": {"python": "3.11.7", "nuitka": "4.3.3"}, "options": {"rounds": n, "quick": False},
            "missing": {}, "variants": body, "calibration": {"samples": noisy(0.15, n, spread, seed), "rounds": list(range(n))},
            "adaptive": {"rounds": n, "stop_reason": "fixed rounds", "undecided": [], "adaptive": False}}


ONEFILE = {"startup_warm_s": 4.0, "startup_blocked_s": 0.05, "idle_pss_bytes": 50e6, "size_bytes": 300e6, "build": 300}
ONEDIR = {"startup_warm_s": 0.45, "startup_blocked_s": 0.004, "idle_pss_bytes": 48e6, "size_bytes": 900e6, "build": 250}
NUITKA = {"startup_warm_s": 0.35, "startup_blocked_s": 0.003, "idle_pss_bytes": 45e6, "size_bytes": 1000e6,
          "startup_instructions": 1.8e9, "build": 500}


def scaled(centers: dict[str, float], **factors: float) -> dict[str, float]:
    return {key: value * factors.get(key, 1.0) for key, value in centers.items()}


def stored(**factors: float) -> dict:
    """A run with the reference builds and a Nuitka standalone changed by ``factors``."""
    return result({"pyinstaller-onefile": ONEFILE, "pyinstaller-onedir": ONEDIR,
                   "nuitka-standalone": scaled(NUITKA, **factors)})


def same_run(head: dict[str, float], base: dict[str, float], *, n: int = 9, spread: float = 0.02,
             seed: int = 1) -> dict:
    """One run measuring head and base/ of the same variant (a pull request)."""
    document = result({"nuitka-standalone": head}, n=n, spread=spread, seed=seed, run_id="shared")
    other = result({"nuitka-standalone": base}, n=n, spread=spread, seed=seed + 50, run_id="shared")
    document["variants"]["base/nuitka-standalone"] = other["variants"]["nuitka-standalone"]
    return document
