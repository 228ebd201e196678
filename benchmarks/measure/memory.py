"""Memory of a whole process tree: PSS and USS summed (a onefile build is a bootstrap process plus its
child; training adds a worker), and peak RSS (``VmHWM``) read while the processes are alive.

RSS double-counts shared pages, so it is only reported beside PSS. ``ru_maxrss`` is never used: Linux
copies a parent's peak into a child at exec, so a small child of pytest would report pytest's peak.
"""

from __future__ import annotations

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
