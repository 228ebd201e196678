"""The same measurements through pytest-benchmark: ``pytest benchmarks/ --benchmark-json=out.json``.

Each built variant (and source) is one benchmark: spawn → first 200 from /health, timed by
``benchmark.pedantic``; idle PSS / USS of the process tree (one more launch, measured as the runner does
once startup settled) and the artifact's size go into
``extra_info``, so pytest-benchmark's JSON and ``compare`` commands carry them too. Variants that are
not built are skipped with the command that builds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.variants import NAMES
from benchmarks.measure.launch import idle_memory, launch, stop
from benchmarks.measure.size import disk_bytes
from benchmarks.variants import discover

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", NAMES)
def test_startup(benchmark: Any, name: str, tmp_path: Path) -> None:  # pytest-benchmark's fixture
    present, missing = discover(ROOT, (name,))
    if not present:
        pytest.skip(f"{name} is not built: {missing.get(name)}")
    variant = present[0]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def one_launch() -> None:
        stop(launch(variant.command, cwd=variant.cwd, data_dir=tmp_path / "data", env=env))

    benchmark.pedantic(one_launch, rounds=5, iterations=1, warmup_rounds=1)
    running = launch(variant.command, cwd=variant.cwd, data_dir=tmp_path / "data", env=env)
    try:
        memory = idle_memory(running)
    finally:
        stop(running)
    benchmark.extra_info.update({
        "variant": name,
        "idle_pss_bytes": memory.pss,
        "idle_uss_bytes": memory.uss,
        "size_bytes": disk_bytes(variant.size_root) if variant.size_root else None,
    })
