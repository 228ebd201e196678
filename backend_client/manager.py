"""Spawn and supervise a backend: the Python counterpart of the desktop app's BackendServiceManager.

Used by ``compile verify``, the benchmarks and the tests, and the reference for the app's own manager.
It works the same for every variant: ``python -m backend`` from source or a built artifact (Nuitka
standalone / onefile, PyInstaller onedir / onefile). The protocol (docs/user-guide/protocol.md):

1. spawn with ``--port 0 --parent-pid <ours> --data-dir <dir>`` and the token in ``PEFT_ENGINE_TOKEN``
   (environment, not argv, so other users cannot read it from the process list);
2. read stdout until the one JSON ready line: ``{"event": "ready", "port", "pid", "version", "mode",
   "token"}``; everything else the backend says goes to stderr (kept in a log file here);
3. ``GET /health`` until it answers 200;
4. stop: ``POST /api/shutdown`` (or SIGTERM), wait, then terminate and kill whatever is left of the
   process tree (a onefile build is a bootstrap process plus its child; training adds a worker).

The manager restarts a backend that dies unexpectedly, with exponential backoff and a bounded number
of attempts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from backend_client.http import Response, http_request, iter_sse, open_stream
from backend_client.process_tree import StopReport, stop_tree, tree

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "PEFT_ENGINE_TOKEN"


class ServiceManagerError(Exception):
    """The backend could not be started, reached, or stopped as the protocol says."""


class BackendStartError(ServiceManagerError):
    pass


@dataclass(frozen=True)
class ReadyInfo:
    port: int
    pid: int
    version: str
    mode: str
    token: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def parse(cls, line: str) -> ReadyInfo:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BackendStartError(f"first stdout line is not the JSON ready line: {line[:200]!r}") from exc
        if not isinstance(data, dict) or data.get("event") != "ready":
            raise BackendStartError(f"first stdout line is not a ready event: {line[:200]!r}")
        missing = [key for key in ("port", "pid", "version", "mode", "token") if key not in data]
        if missing:
            raise BackendStartError(f"ready line lacks {', '.join(missing)}: {line[:200]!r}")
        return cls(port=int(data["port"]), pid=int(data["pid"]), version=str(data["version"]),
                   mode=str(data["mode"]), token=str(data["token"]))


@dataclass(frozen=True, kw_only=True)
class LaunchSpec:
    """How to start one backend variant."""

    command: tuple[str, ...]
    data_dir: Path | None  # None: the backend's own default (the per-user data dir under HOME)
    cwd: Path | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ready_timeout_s: float = 120.0
    extra_args: tuple[str, ...] = ()
    frozen: bool = True  # a built artifact: it gets none of the PYTHON* variables this process inherited

    @classmethod
    def source(cls, data_dir: Path, **kwargs: Any) -> LaunchSpec:
        return cls(command=(sys.executable, "-m", "backend"), data_dir=data_dir, cwd=REPO_ROOT, frozen=False, **kwargs)

    @classmethod
    def artifact(cls, executable: Path, data_dir: Path | None, **kwargs: Any) -> LaunchSpec:
        return cls(command=(str(executable),), data_dir=data_dir, **kwargs)

    def argv(self) -> list[str]:
        data_dir = ["--data-dir", str(self.data_dir)] if self.data_dir is not None else []
        return [*self.command, "--port", "0", "--parent-pid", str(os.getpid()), *data_dir, *self.extra_args]

    def environment(self) -> dict[str, str]:
        """Ours, with ``env`` on top (a value of None removes the variable), the token and unbuffered output.

        A built artifact ignores the ``PYTHON*`` variables anyway (it runs isolated); as a second line of
        defence the ones this process inherited are not passed on (those given in ``env`` are). A source
        run is an ordinary Python run and gets them all."""
        inherited = dict(os.environ)
        if self.frozen:
            inherited = {key: value for key, value in inherited.items() if not key.upper().startswith("PYTHON")}
        merged: dict[str, str | None] = {**inherited, **self.env, TOKEN_ENV: self.token}
        if not self.frozen:
            merged.setdefault("PYTHONUNBUFFERED", "1")
        merged.pop("PEFT_ENGINE_PORT", None)
        return {key: value for key, value in merged.items() if value is not None}


class BackendProcess:
    """One running backend: its process, ready line, and an HTTP client for its API."""

    def __init__(self, spec: LaunchSpec):
        self.spec = spec
        if spec.data_dir is not None:
            spec.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = Path(tempfile.mkstemp(prefix="peft-engine-", suffix=".stderr.log")[1])
        self._stderr = self.stderr_path.open("wb")
        popen_kwargs: dict[str, Any] = {}
        if os.name == "nt":
            popen_kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)  # Windows only
        else:
            popen_kwargs["start_new_session"] = True  # its own process group: the tree can be signalled
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            spec.argv(), cwd=spec.cwd, env=spec.environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr, **popen_kwargs,
        )
        self._ready_line: str | None = None
        self.extra_stdout: list[str] = []
        self.stopped = False  # stop() was called: its exit is deliberate, not a crash
        self._line_seen = threading.Event()
        self._reader = threading.Thread(target=self._read_stdout, name="backend-stdout", daemon=True)
        self._reader.start()
        self.ready: ReadyInfo | None = None
        self._known: dict[int, psutil.Process] = {}  # every process of the tree seen, kept with its identity
        self._remember([self.popen.pid])

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if self._ready_line is None:
                self._ready_line = line
                self._line_seen.set()
            else:  # a protocol violation, kept for the tests; drained so the backend never blocks on a full pipe
                self.extra_stdout.append(line)
        self._line_seen.set()

    def stderr_tail(self, lines: int = 30) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self) -> ReadyInfo:
        deadline = self.started_at + self.spec.ready_timeout_s
        if not self._line_seen.wait(max(0.0, deadline - time.perf_counter())):
            raise BackendStartError(
                f"no ready line within {self.spec.ready_timeout_s:.0f}s; stderr:\n{self.stderr_tail()}"
            )
        if self._ready_line is None:
            self.popen.wait(5)
            raise BackendStartError(
                f"backend exited with code {self.popen.returncode} before its ready line; "
                f"stderr:\n{self.stderr_tail()}"
            )
        ready = ReadyInfo.parse(self._ready_line)
        if ready.token != self.spec.token:
            raise BackendStartError("the ready line reports a different token than the one passed")
        self.ready = ready
        self._remember([ready.pid])
        while True:
            try:
                if self.request("GET", "/health", auth=False, timeout=2).status == 200:
                    return ready
            except OSError:
                pass
            if self.popen.poll() is not None:
                raise BackendStartError(f"backend exited with code {self.popen.returncode} after its ready line")
            if time.perf_counter() > deadline:
                raise BackendStartError(f"/health did not answer 200 within {self.spec.ready_timeout_s:.0f}s")
            time.sleep(0.01)

    # -- HTTP ---------------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 60.0,
        headers: Mapping[str, str] | None = None, raw_body: bytes | None = None,
    ) -> Response:
        if self.ready is None:
            raise ServiceManagerError("backend is not ready")
        return http_request(self.ready.port, method, path, body, token=self.ready.token if auth else None,
                            timeout=timeout, headers=headers, raw_body=raw_body)

    def stream_events(
        self, path: str, *, last_event_id: int | str | None = None, timeout: float = 120.0,
        method: str = "GET", body: Any = None,
    ) -> list[dict[str, Any]]:
        """Read a server-sent-event stream to its end; returns ``{"id", "event", "data"}`` dicts. A stream
        cut before its end raises (``http.client.IncompleteRead``), as a browser would report it."""
        return list(self.iter_events(path, last_event_id=last_event_id, timeout=timeout, method=method, body=body))

    def iter_events(
        self, path: str, *, last_event_id: int | str | None = None, timeout: float = 120.0,
        method: str = "GET", body: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """The events of a stream as they arrive; closing the iterator closes the connection."""
        if self.ready is None:
            raise ServiceManagerError("backend is not ready")
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        connection, response = open_stream(self.ready.port, method, path, body, token=self.ready.token,
                                           timeout=timeout, headers=headers)
        try:
            if response.status != 200:
                raise ServiceManagerError(f"{method} {path}: {response.status} {response.read()[:300]!r}")
            yield from iter_sse(iter(response.readline, b""))
        finally:
            connection.close()

    # -- processes ----------------------------------------------------------------------------------
    @property
    def server_pid(self) -> int:
        """The process serving HTTP: the launched one, or in a onefile build the child it started."""
        return self.ready.pid if self.ready is not None else self.popen.pid

    def process_tree(self) -> list[psutil.Process]:
        """The launched process and all its descendants that are alive now."""
        processes = tree(self.popen.pid)
        for process in processes:
            self._known.setdefault(process.pid, process)
        return processes

    def _remember(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                self._known.setdefault(pid, psutil.Process(pid))

    def stop(self, timeout: float = 5.0, *, via_http: bool = True) -> StopReport:
        """Stop gracefully (``POST /api/shutdown``, or SIGTERM when ``via_http`` is off or that fails), then
        reap whatever is left of the tree; the report lists any process left behind."""
        self.process_tree()

        def ask() -> bool:
            if not via_http or self.ready is None:
                return False
            try:
                return self.request("POST", "/api/shutdown", timeout=2).status == 202
            except OSError:
                return False

        self.stopped = True
        report = stop_tree(self.popen, timeout=timeout, ask=ask, known=self._known.values())
        self._stderr.close()
        return report


class ServiceManager:
    """Start a backend, keep it running (bounded restarts with backoff), stop it and its whole tree."""

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        max_restarts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.spec = spec
        self.max_restarts = max_restarts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.on_event = on_event or (lambda kind, data: log.info("backend %s: %s", kind, data))
        self.restarts = 0
        self.current: BackendProcess | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.gave_up = threading.Event()

    def start(self) -> BackendProcess:
        process = self._launch()
        self._supervisor = threading.Thread(target=self._supervise, name="backend-supervisor", daemon=True)
        self._supervisor.start()
        return process

    def _launch(self) -> BackendProcess:
        process = BackendProcess(self.spec)
        try:
            ready = process.wait_ready()
        except BaseException:
            process.stop(timeout=2, via_http=False)
            raise
        with self._lock:
            self.current = process
        self.on_event("ready", {"pid": ready.pid, "port": ready.port, "mode": ready.mode})
        return process

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            current = self.current
            if current is None or current.popen.poll() is None or current.stopped:
                self._stopping.wait(0.2)
                continue
            code = current.popen.returncode
            self.on_event("exited", {"pid": current.popen.pid, "code": code, "stderr": current.stderr_tail(10)})
            current.stop(timeout=0.5, via_http=False)  # reap what is left of its tree
            if self.restarts >= self.max_restarts:
                self.on_event("gave_up", {"restarts": self.restarts})
                self.gave_up.set()
                return
            delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** self.restarts))
            self.restarts += 1
            self.on_event("restarting", {"attempt": self.restarts, "delay_s": delay})
            if self._stopping.wait(delay):
                return
            try:
                self._launch()
            except ServiceManagerError as exc:
                self.on_event("restart_failed", {"attempt": self.restarts, "error": str(exc)})
                with self._lock:
                    self.current = current  # dead; the loop tries again or gives up

    def wait_for_restart(self, previous: BackendProcess, timeout: float = 60.0) -> BackendProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self.current
            if current is not None and current is not previous and current.ready is not None:
                return current
            if self.gave_up.is_set():
                raise ServiceManagerError(f"gave up after {self.restarts} restarts")
            time.sleep(0.05)
        raise ServiceManagerError(f"no restart within {timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> StopReport | None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        with self._lock:
            current, self.current = self.current, None
        return current.stop(timeout) if current is not None else None

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
