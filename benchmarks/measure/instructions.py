"""Instructions executed from spawn to the ready line, counted by valgrind's callgrind.

A deterministic CPU figure for startup: the same binary with the same inputs and environment executes
the same instructions whatever else the machine is doing (measured here: repeats within 0.1 %),
where wall-clock startup moves 10-40 % between runs on a shared 2-core machine. The backend is
started with ``PEFT_ENGINE_EXIT_AFTER_READY=1``, so it exits right after printing its ready line and
nothing later is counted; a onefile's bootstrap and the server it starts are summed
(``--trace-children``). What makes a count vary is pinned: the hash seed, the token, the data dir's
path length. These VMs expose no hardware counters (``perf stat -e instructions`` fails), which is
why callgrind, at ~50× slowdown.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.measure.launch import measured_environment

VALGRIND = "valgrind"
_SUMMARY = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.M)
FIXED_TOKEN = "instruction-count-token-0123456789"


class InstructionCountError(Exception):
    pass


def available() -> bool:
    return shutil.which(VALGRIND) is not None


def callgrind_total(path: Path) -> int:
    """The total instruction count (``Ir``) of one callgrind output file."""
    match = _SUMMARY.search(path.read_bytes())
    if match is None:
        raise InstructionCountError(f"{path} has no summary line (an incomplete callgrind output)")
    return int(match.group(1))


def count_startup_instructions(command: tuple[str, ...], *, cwd: Path | None = None,
                               env: dict[str, str] | None = None, timeout: float = 900.0) -> tuple[int, float]:
    """(instructions from spawn to the ready line, wall seconds the measurement took)."""
    if not available():
        raise InstructionCountError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="peft-callgrind-") as scratch:
        folder = Path(scratch)
        environment = measured_environment({**(env or {}), "PEFT_ENGINE_EXIT_AFTER_READY": "1",
                                            "PEFT_ENGINE_TOKEN": FIXED_TOKEN, "PYTHONHASHSEED": "0",
                                            "PEFT_ENGINE_LOG_LEVEL": "warning"})
        # Once outside valgrind first: from source, that writes the bytecode caches the counted run reads.
        subprocess.run([*command, "--port", "0", "--data-dir", str(folder / "warm-up")], cwd=cwd, env=environment,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        argv = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.out.%p",
                "--trace-children=yes", "--dump-instr=no", "--dump-line=no", "--compress-strings=no",
                *command, "--port", "0", "--data-dir", str(folder / "data")]
        started = time.perf_counter()
        try:
            completed = subprocess.run(argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                                       capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise InstructionCountError(f"{command[0]} under callgrind did not exit within {timeout:.0f}s") from exc
        seconds = time.perf_counter() - started
        if completed.returncode != 0 or b'"event":"ready"' not in completed.stdout:
            tail = completed.stderr.decode("utf-8", "replace")[-1500:]
            raise InstructionCountError(f"{command[0]} under callgrind exited {completed.returncode} "
                                        f"without its ready line:\n{tail}")
        outputs = sorted(folder.glob("callgrind.out.*"))
        if not outputs:
            raise InstructionCountError("callgrind wrote no output")
        return sum(callgrind_total(path) for path in outputs), seconds
