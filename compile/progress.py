"""What a build says while it works: a line per step with its elapsed time, a heartbeat with a real
progress figure during long steps, and ``::group::`` folding under GitHub Actions.

Verbosity: ``-q`` prints only the summary and errors; the default prints the steps and heartbeats;
``-v`` also streams the build tool's own output (which always goes to its log file).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

QUIET, NORMAL, VERBOSE = 0, 1, 2
HEARTBEAT_S = 15.0


class Progress:
    def __init__(self, verbosity: int = NORMAL, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, github_actions: bool | None = None):
        self.verbosity = verbosity
        self.stream = stream or sys.stdout
        self.clock = clock
        self.started = clock()
        self.github_actions = os.environ.get("GITHUB_ACTIONS") == "true" if github_actions is None else github_actions
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self, text: str, level: int = NORMAL) -> None:
        if self.verbosity >= level:
            with self._lock:
                self.stream.write(f"[{self.elapsed():7.1f}s] {text}\n")
                self.stream.flush()

    def raw(self, text: str, level: int = VERBOSE) -> None:
        """A line of a tool's own output (shown with -v)."""
        if self.verbosity >= level:
            with self._lock:
                self.stream.write(text if text.endswith("\n") else text + "\n")
                self.stream.flush()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.github_actions and self.verbosity >= NORMAL:
            self.raw(f"::group::{name}", NORMAL)
        self.line(f"▶ {name}")
        started = self.clock()
        try:
            yield
        except BaseException:
            self.line(f"✗ {name} failed after {self.clock() - started:.1f}s", QUIET)
            raise
        finally:
            if self.github_actions and self.verbosity >= NORMAL:
                self.raw("::endgroup::", NORMAL)
        self.line(f"✓ {name} ({self.clock() - started:.1f}s)")

    @contextmanager
    def heartbeat(self, status: Callable[[], str | None], every: float = HEARTBEAT_S) -> Iterator[None]:
        """While the block runs, print ``status()`` every ``every`` seconds (nothing when it says None)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                text = status()
                if text:
                    self.line(f"  … {text}")

        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class NuitkaPhases:
    """Follows Nuitka's output to name the phase it is in, and counts C files compiled in its build
    folder (Nuitka prints no progress when its output goes to a pipe)."""

    MARKERS = (
        ("Nuitka: Starting Python compilation", "Python phase (following imports, optimizing)"),
        ("Nuitka: Generating source code for C backend", "generating C"),
        ("Nuitka: Running C compilation via Scons", "C compile"),
        ("Nuitka-Scons: Backend C linking", "link"),
        ("Nuitka-Onefile:", "onefile payload"),
        ("Nuitka: Successfully created", "done"),
    )

    def __init__(self, progress: Progress, build_folder: Path):
        self.progress = progress
        self.build_folder = build_folder
        self.phase: str | None = None
        self.phase_started = progress.clock()
        self.compile_started = 0.0

    def feed(self, line: str) -> None:
        self.progress.raw(line)
        for marker, phase in self.MARKERS:
            if line.startswith(marker) and phase != self.phase:
                now = self.progress.clock()
                if self.phase is not None:
                    self.progress.line(f"  ✓ {self.phase} ({now - self.phase_started:.1f}s)")
                self.phase, self.phase_started = phase, now
                if phase == "C compile":
                    self.compile_started = time.time()
                if phase != "done":
                    self.progress.line(f"  ▶ {phase}")

    def status(self) -> str | None:
        if self.phase in (None, "done"):
            return None
        took = f"{self.progress.clock() - self.phase_started:.0f}s"
        if self.phase == "C compile":
            sources = list(self.build_folder.glob("*.c"))
            # object files of an earlier build stay in the folder: count those written since this phase began
            # (a second's margin: file times are coarser than the clock)
            done = [p for p in self.build_folder.glob("*.o") if p.stat().st_mtime >= self.compile_started - 1.0]
            if sources:
                return f"C compile: {len(done)} of {len(sources)} files ({len(done) / len(sources):.0%}), {took}"
        return f"{self.phase}: {took}"


class PyInstallerPhases:
    """Names PyInstaller's phase from what it has written so far (its output is warnings only), with
    a figure where there is one: the package's size as it is compressed, the executable's as it is
    written, the files collected.

    Order: analysis (``Analysis-00.toc`` once done), the PYZ of pure modules (``PYZ-00.toc``), the
    compressed package (``<name>.pkg``, growing), then the executable (``dist/<name>``) or, for a
    folder build, the collect step that copies every file into ``dist/<name>/``. The work folder keeps
    an earlier build's files: only files written since this build began count.
    """

    def __init__(self, progress: Progress, work_folder: Path, dist_folder: Path):
        self.progress = progress
        self.work_folder = work_folder
        self.dist_folder = dist_folder
        self.started = time.time() - 1.0  # file times are coarser than the clock

    def feed(self, line: str) -> None:
        self.progress.raw(line)

    def _fresh(self, folder: Path, pattern: str) -> list[Path]:
        if not folder.is_dir():
            return []
        return [p for p in folder.glob(pattern) if p.is_file() and p.stat().st_mtime >= self.started]

    def status(self) -> str | None:
        took = f"{self.progress.elapsed():.0f}s"
        if not self._fresh(self.work_folder, "*/Analysis-00.toc"):
            return f"analysis (following imports): {took} since the start"
        if not self._fresh(self.work_folder, "*/PYZ-00.toc"):
            return "PYZ archive of the pure-Python modules"
        collected = self._fresh(self.dist_folder, "*/**/*")
        if collected:
            return f"collect: {len(collected)} files, {sum(p.stat().st_size for p in collected) / 2**20:.0f} MiB"
        executable = self._fresh(self.dist_folder, "*")
        if executable:
            return f"write the executable: {executable[0].stat().st_size / 2**20:.0f} MiB"
        package = self._fresh(self.work_folder, "*/*.pkg")
        if package:
            return f"compress the package: {package[0].stat().st_size / 2**20:.0f} MiB written"
        return "package"
