"""The same measurements through pytest-benchmark: ``pytest benchmarks/ --benchmark-json=out.json``.

Each built variant (and source) is one benchmark: spawn → first 200 from /health, timed by
``benchmark.pedantic``; idle PSS / USS of the process tree and the artifact's size go into
``extra_info``, so pytest-benchmark's JSON and ``compare`` commands carry them too. Variants that are
not built are skipped with the command that builds them.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from benchmarks.measure.launch import launch, stop
from benchmarks.measure.size import disk_bytes
from benchmarks.variants import BUILD_COMMANDS, VARIANTS, discover

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", VARIANTS)
def test_startup(benchmark, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    present, missing = discover(ROOT, (name,))
    if not present:
        pytest.skip(f"{name} is not built: {missing.get(name, BUILD_COMMANDS.get(name))}")
    variant = present[0]
    memory = []

    def one_launch() -> None:
        running = launch(variant.command, cwd=variant.cwd, data_dir=tmp_path / "data",
                         env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
        try:
            memory.append(running.memory())
        finally:
            stop(running)

    benchmark.pedantic(one_launch, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update({
        "variant": name,
        "idle_pss_bytes": statistics.median(m.pss for m in memory),
        "idle_uss_bytes": statistics.median(m.uss for m in memory),
        "size_bytes": disk_bytes(variant.size_root) if variant.size_root else None,
    })
