"""Memory of a whole process tree: PSS and USS summed (a onefile build is a bootstrap process plus its
child; training adds a worker), and peak RSS (``VmHWM``) read while the processes are alive.

RSS double-counts shared pages, so it is only reported beside PSS. ``ru_maxrss`` is never used: Linux
copies a parent's peak into a child at exec, so a small child of pytest would report pytest's peak.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class TreeMemory:
    pss: int
    uss: int
    rss: int
    hwm: int  # sum over the tree of each process's peak resident set (VmHWM)
    processes: int


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process, in bytes (Linux ``/proc/<pid>/status``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree(root_pid: int) -> list[psutil.Process]:
    root = psutil.Process(root_pid)
    return [root, *root.children(recursive=True)]


def measure_tree(root_pid: int) -> TreeMemory:
    pss = uss = rss = hwm = count = 0
    for process in tree(root_pid):
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        pss += getattr(info, "pss", info.rss)
        uss += info.uss
        rss += info.rss
        hwm += vm_hwm(process.pid)
        count += 1
    return TreeMemory(pss=pss, uss=uss, rss=rss, hwm=hwm, processes=count)


def rollup_pss(pid: int) -> int | None:
    """One process's PSS from ``/proc/<pid>/smaps_rollup`` (Linux 4.14+), in bytes: a single summed
    record, so it costs a fraction of reading every mapping (torch's processes have thousands)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            for line in file:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def tree_pss(root_pid: int) -> int:
    """The tree's summed PSS, the fast way where the OS has it; elsewhere :func:`measure_tree`'s."""
    total = 0
    try:
        processes = tree(root_pid)
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        pss = rollup_pss(process.pid)
        if pss is None:
            try:
                info = process.memory_full_info()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            pss = getattr(info, "pss", info.rss)
        total += pss
    return total


class PeakSampler:
    """The highest tree PSS seen while it runs, sampled every ``interval`` seconds on its own thread. A
    sampler can only miss a peak (never invent one), so it samples far faster than the peaks last: model
    loading in a training worker holds its peak for a fraction of a second, and one full ``smaps`` read of
    that tree alone takes longer than that."""

    def __init__(self, root_pid: int, interval: float = 0.01) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-peak-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.root_pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
