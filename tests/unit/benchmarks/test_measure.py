"""Measurement functions against small real processes with known properties."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.measure.cache import evict
from benchmarks.measure.memory import PeakSampler, measure_tree, rollup_pss, tree_pss, vm_hwm
from benchmarks.measure.size import compressed_bytes, disk_bytes

ALLOCATE = """
import sys, time
block = bytearray({size})
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page: resident and private
print("ready", flush=True)
time.sleep(60)
"""


def spawn(size: int, children: int = 0) -> subprocess.Popen[str]:
    code = ALLOCATE.format(size=size)
    if children:
        code = (f"import subprocess, sys\nkids = [subprocess.Popen([sys.executable, '-c', {ALLOCATE.format(size=size)!r}],"
                f" stdout=subprocess.PIPE, text=True) for _ in range({children})]\n"
                "[k.stdout.readline() for k in kids]\n" + code)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_known_allocation_is_measured_within_tolerance() -> None:
    small, big = spawn(0), spawn(64 * 1024**2)
    try:
        extra = measure_tree(big.pid).uss - measure_tree(small.pid).uss
        assert 60 * 1024**2 < extra < 72 * 1024**2, extra
        assert vm_hwm(big.pid) >= 64 * 1024**2
    finally:
        for process in (small, big):
            process.kill()
            process.wait()


SPIKE = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
block = bytearray({size})
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep({hold})
del block
print("done", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux smaps_rollup")
@pytest.mark.parametrize(("interval", "caught"), [(0.01, True), (2.0, False)])
def test_the_peak_sampler_catches_a_short_peak_that_slow_polling_misses(interval: float, caught: bool) -> None:
    """A 96 MiB peak held for 0.2 s, between two reads of the tree 1 s apart: the 10 ms sampler sees it,
    a 2 s sampler (whose first sample comes before the peak) does not: the sampler can fail."""
    process = subprocess.Popen([sys.executable, "-c", SPIKE.format(size=96 * 1024**2, hold=0.2)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "ready"
        before = tree_pss(process.pid)
        assert before == rollup_pss(process.pid) and before > 0
        with PeakSampler(process.pid, interval=interval) as sampler:
            time.sleep(0.05)
            process.stdin.write("go\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "done"
            time.sleep(0.05)
        after = tree_pss(process.pid)
        assert after < before + 32 * 1024**2, "the peak is gone when the poll after it reads the tree"
        assert (sampler.peak > before + 80 * 1024**2) is caught, (sampler.peak, before, sampler.samples)
    finally:
        process.kill()
        process.wait()


def test_two_process_tree_is_summed() -> None:
    parent = spawn(32 * 1024**2, children=1)
    try:
        time.sleep(0.2)
        memory = measure_tree(parent.pid)
        assert memory.processes == 2
        assert memory.uss > 64 * 1024**2 and memory.pss >= memory.uss
    finally:
        import psutil

        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_size_and_eviction(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(bytes(range(256)) * 100)
    assert disk_bytes(tmp_path) == 125_600
    assert compressed_bytes(tmp_path) < 5_000
    assert evict([tmp_path]) == 2


def test_the_unreleased_launch_turns_the_release_off_and_records_its_idle_pss(tmp_path: Path, monkeypatch) -> None:
    """What the server is told (the setting's variable set to 0) and where the figure goes; a launch
    that fails is an error of that metric, not a sample."""
    from backend.memory_release import SWITCH_ENV
    from backend.variants import NUITKA_STANDALONE
    from benchmarks import runner
    from benchmarks.measure.launch import LaunchError
    from benchmarks.measure.memory import TreeMemory
    from benchmarks.variants import Measured

    seen: list[dict[str, str]] = []

    def fake_launch(command, *, cwd, data_dir, env=None, **kwargs):
        seen.append(dict(env or {}))
        if len(seen) == 2:
            raise LaunchError("did not start")
        return object()

    monkeypatch.setattr(runner, "launch", fake_launch)
    monkeypatch.setattr(runner, "idle_memory", lambda running: TreeMemory(pss=42 * 1024**2, uss=0, rss=0, hwm=0,
                                                                          processes=1))
    monkeypatch.setattr(runner, "stop", lambda running: 0.0)
    variant = Measured("nuitka-standalone", NUITKA_STANDALONE, ("peft_engine",), None, (), None)
    session = runner.Session([variant], tmp_path, log=lambda line: None)
    session.measure_unreleased(variant)
    session.measure_unreleased(variant)
    assert seen[0][SWITCH_ENV] == "0"
    result = session.results["nuitka-standalone"]
    assert result["samples"]["idle_pss_unreleased_bytes"] == [42 * 1024**2]
    assert result["errors"] == ["idle_pss_unreleased_bytes: did not start"]
