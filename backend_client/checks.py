"""Behaviour checks of a running backend, shared by ``compile verify`` and the HTTP behaviour suite.

Each check drives a :class:`~backend_client.manager.BackendProcess` over HTTP only, as the desktop app
does, and returns a one-line detail, or raises :class:`CheckFailed` with what was seen and, when the
server logged an exception, its last line: the cause, not only the symptom. Checks never use
``assert``, so they check under ``python -O`` too.

:data:`FIRST_USE` lists the scenarios that each start a *fresh* server and use one ML entry point
first: a build where something only works after another request prepared it fails one of them.
"""

from __future__ import annotations

import http.client
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend_client.http import Response, parse_sse
from backend_client.manager import BackendProcess, ServiceManagerError

TINY_MODEL = "tiny-llama"
SAMPLE_DATASET = "sample-instructions"
ML_PACKAGES = ("torch", "transformers", "peft")
PROMPT = "What is 2 plus 2?"
TRAIN_STEPS = 6
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt|Exit)\b.*$")


class CheckFailed(Exception):
    """A behaviour check failed; the message says what was seen."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def logged_cause(process: BackendProcess) -> str:
    """The last exception line the server wrote to stderr (its traceback's summary), or ''."""
    try:
        lines = process.stderr_tail(200).splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return ""


def expect_status(process: BackendProcess, response: Response, status: int, what: str) -> Response:
    if response.status != status:
        cause = logged_cause(process) if response.status >= 500 else ""
        raise CheckFailed(f"{what}: expected {status}, got {response.summary()}"
                          + (f"; server log: {cause}" if cause else ""))
    return response


# -- startup and the protocol ---------------------------------------------------------------------------
def ready_line(process: BackendProcess, mode: str) -> str:
    try:
        ready = process.wait_ready()
    except ServiceManagerError as exc:
        raise CheckFailed(str(exc)) from exc
    expect(ready.mode == mode, f"ready line says mode {ready.mode!r}, expected {mode!r}")
    return f"port {ready.port}, pid {ready.pid}, mode {ready.mode}, version {ready.version}"


def health(process: BackendProcess, mode: str) -> str:
    response = expect_status(process, process.request("GET", "/health", auth=False), 200, "GET /health")
    body = response.json()
    expect(body.get("status") == "ok" and body.get("mode") == mode, f"GET /health answered {body}")
    return "200"


def token(process: BackendProcess) -> str:
    anonymous = process.request("GET", "/api/models", auth=False)
    wrong = process.request("GET", "/api/models", auth=False, headers={"Authorization": "Bearer wrong"})
    right = process.request("GET", "/api/models")
    seen = (anonymous.status, wrong.status, right.status)
    expect(seen == (401, 401, 200), f"without / wrong / right token: got {seen}, expected (401, 401, 200)")
    expect(anonymous.headers.get("www-authenticate", anonymous.headers.get("WWW-Authenticate")) == "Bearer",
           "a 401 must carry 'WWW-Authenticate: Bearer'")
    return "401 without / with a wrong token, 200 with it"


def host_check(process: BackendProcess) -> str:
    for host in ("evil.example", "127.0.0.1.nip.io", "localhost.evil.example:80"):
        response = process.request("GET", "/health", auth=False, headers={"Host": host})
        expect(response.status == 400, f"Host {host!r} answered {response.status}, expected 400")
    for host in ("localhost", "[::1]:1234"):
        response = process.request("GET", "/health", auth=False, headers={"Host": host})
        expect(response.status == 200, f"Host {host!r} answered {response.status}, expected 200")
    return "foreign hosts refused, loopback names accepted"


def data_files(process: BackendProcess, manifest: Sequence[dict[str, Any]]) -> str:
    paths = [str(entry["path"]) for entry in manifest]
    response = expect_status(process, process.request("POST", "/api/system/bundle-files", {"paths": paths}), 200,
                             "POST /api/system/bundle-files")
    seen = {entry["path"]: entry for entry in response.json()["files"]}
    problems = []
    for entry in manifest:
        found = seen.get(str(entry["path"]), {})
        if not found.get("ok"):
            problems.append(f"{entry['path']} missing or unreadable ({found.get('error', 'no answer')})")
        elif found.get("sha256") != entry["sha256"]:
            problems.append(f"{entry['path']} differs from the declared file")
    expect(not problems, "; ".join(problems))
    return f"{len(paths)} declared files present and identical"


def idle_process(process: BackendProcess, *, sidecar: bool) -> str:
    """Before anything asks for it, the server holds no ML package and nothing from the sidecar; a
    build with a sidecar has it on the import path already; on Linux, startup memory was released."""
    info = expect_status(process, process.request("GET", "/api/system/process"), 200, "GET /api/system/process").json()
    heavy = sorted(set(ML_PACKAGES) & set(info["modules"]))
    expect(not heavy, f"imported at startup: {', '.join(heavy)}")
    expect(info["sidecar"]["modules_loaded"] == 0,
           f"{info['sidecar']['modules_loaded']} modules loaded from the ML sidecar at startup")
    # anyio imports every submodule at once when its lazy importer cannot read anyio/__init__.py
    # (module-sources in [tool.compile]); anyio.to_process is one a source run never loads at startup
    expect("anyio.to_process" not in info["modules"],
           "anyio imported all its submodules at startup: its lazy importer found no anyio/__init__.py")
    detail = f"{len(info['modules'])} modules, no ML stack"
    if sidecar:
        expect(bool(info["sidecar"]["on_path"]),
               "the ML sidecar is not on the import path at startup: the first ML request would fail")
        detail += f"; sidecar on the import path ({info['sidecar']['on_path'][0]})"
    if sys.platform.startswith("linux"):
        deadline = time.monotonic() + 10
        while info["startup_release"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            info = process.request("GET", "/api/system/process").json()
        released = info["startup_release"]
        expect(released is not None, "startup memory was not released within 10 s")
        detail += (f"; released {released['file_kib'] / 1024:.1f} MiB of startup pages, "
                   f"PSS now {info['memory_bytes']['pss'] / 2**20:.1f} MiB")
    return detail


LAUNCHER_RESIDENT_SHARE = 0.10


def executable_resident_bytes(pid: int, executable: Path) -> int:
    """Bytes of ``executable``'s file that process ``pid`` holds resident (Linux ``/proc/PID/smaps``)."""
    from backend.memory_release import parse_smaps

    target = str(executable.resolve())
    text = Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8", errors="replace")
    return sum(mapping.rss_kib for mapping in parse_smaps(text) if mapping.path == target) * 1024


def launcher_memory(process: BackendProcess) -> str:
    """A onefile's launcher (the process the app started, which unpacks and then waits for the server)
    must not keep its payload resident: it lives as long as the server. The launcher's own code is
    well under 1 % of a onefile's size; a launcher that keeps what it unpacked holds about half of it
    (Nuitka 4.3.3 without the carried ``onefile-release-payload`` patch: 90 of 194 MiB). Linux only."""
    launcher, server = process.popen.pid, process.server_pid
    expect(launcher != server, f"the launched process {launcher} is the server itself: not a onefile launcher")
    executable = Path(process.spec.command[0])
    size = executable.stat().st_size
    resident = executable_resident_bytes(launcher, executable)
    share = resident / size
    expect(share <= LAUNCHER_RESIDENT_SHARE,
           f"the onefile launcher (pid {launcher}) keeps {resident / 2**20:.1f} MiB of its {size / 2**20:.1f} MiB "
           f"executable resident ({share:.0%}; at most {LAUNCHER_RESIDENT_SHARE:.0%}) for as long as the server "
           f"runs: the unpacked payload was not released")
    return (f"launcher (pid {launcher}) keeps {resident / 2**20:.1f} of {size / 2**20:.1f} MiB of its executable "
            f"resident ({share:.1%})")


# -- the ML entry points ------------------------------------------------------------------------------
def ml_stack(process: BackendProcess) -> str:
    response = expect_status(process, process.request("GET", "/api/system", timeout=300), 200, "GET /api/system")
    ml = response.json()["ml"]
    return f"torch {ml['torch']}, transformers {ml['transformers']}, peft {ml['peft']}"


def generate(process: BackendProcess, *, model: str = TINY_MODEL, adapter: str | None = None,
             stream: bool = False) -> str:
    body: dict[str, Any] = {"model": model, "prompt": PROMPT, "max_new_tokens": 8, "stream": stream}
    if adapter:
        body["adapter"] = adapter
    what = f"POST /api/generate ({'streamed, ' if stream else ''}model {model}"
    what += f", adapter {adapter})" if adapter else ")"
    try:
        response = process.request("POST", "/api/generate", body, timeout=300)
    except (OSError, http.client.HTTPException) as exc:  # a stream cut mid-body: http.client.IncompleteRead
        cause = logged_cause(process)
        raise CheckFailed(f"{what}: connection failed: {type(exc).__name__}: {exc}"
                          + (f"; server log: {cause}" if cause else "")) from exc
    expect_status(process, response, 200, what)
    if not stream:
        result = response.json()
        expect(result.get("new_tokens", 0) > 0, f"{what}: no tokens generated: {result}")
        return f"{result['new_tokens']} tokens: {result['text']!r}"
    events = parse_sse(response.body.decode("utf-8"))
    errors = [event["data"] for event in events if event.get("event") == "error"]
    expect(not errors, f"{what}: the stream reported {errors}")
    expect(bool(events) and events[-1].get("event") == "done",
           f"{what}: the stream ended without a 'done' event ({len(events)} events)")
    tokens = [event for event in events if event.get("event") == "token"]
    expect(bool(tokens), f"{what}: no token events")
    return f"{len(tokens)} token events: {events[-1]['data']['text']!r}"


def train(process: BackendProcess, *, adapter: str, steps: int = TRAIN_STEPS) -> str:
    """A short LoRA job on the bundled model, followed over SSE, then the stream replayed from the middle
    with ``Last-Event-ID``."""
    body = {"model": TINY_MODEL, "dataset": SAMPLE_DATASET, "max_steps": steps, "batch_size": 4,
            "learning_rate": 0.02, "checkpoint_every": 3, "adapter_name": adapter}
    job = expect_status(process, process.request("POST", "/api/jobs", body), 202, "POST /api/jobs").json()
    path = f"/api/jobs/{job['id']}/events"
    try:
        events = process.stream_events(path, timeout=600)
    except (OSError, http.client.HTTPException, ServiceManagerError) as exc:
        raise CheckFailed(f"GET {path}: {type(exc).__name__}: {exc}") from exc
    final = events[-1]["data"] if events else {}
    if final.get("status") != "completed":
        row = process.request("GET", f"/api/jobs/{job['id']}").json()
        raise CheckFailed(f"job {job['id']} ended {row.get('status')!r}: {row.get('error')}")
    step_events = [event["data"] for event in events if event.get("event") == "step"]
    expect([event["step"] for event in step_events] == list(range(1, steps + 1)),
           f"step events {[event['step'] for event in step_events]}, expected 1..{steps}")
    middle = int(events[len(events) // 2]["id"])
    replay = process.stream_events(path, last_event_id=middle, timeout=60)
    expected_ids = [int(event["id"]) for event in events if int(event["id"]) > middle]
    expect([int(event["id"]) for event in replay] == expected_ids,
           f"replay after Last-Event-ID {middle} sent ids {[event.get('id') for event in replay]}")
    adapter_row = expect_status(process, process.request("GET", f"/api/adapters/{adapter}"), 200,
                                f"GET /api/adapters/{adapter}").json()
    expect(adapter_row.get("base_model") == TINY_MODEL, f"adapter recorded {adapter_row}")
    return f"{steps} steps, loss {step_events[0]['loss']:.3f} -> {step_events[-1]['loss']:.3f}; replay ok"


def merge(process: BackendProcess, *, adapter: str, name: str) -> str:
    response = process.request("POST", f"/api/adapters/{adapter}/merge", {"name": name}, timeout=300)
    expect_status(process, response, 201, f"POST /api/adapters/{adapter}/merge")
    models = [row["id"] for row in process.request("GET", "/api/models").json()]
    expect(name in models, f"merged model {name!r} is not listed in /api/models ({models})")
    return f"model {name!r} created"


def register_model(process: BackendProcess, *, name: str, folder: Path) -> str:
    response = process.request("POST", "/api/models", {"name": name, "path": str(folder)})
    expect_status(process, response, 201, "POST /api/models")
    expect(response.json().get("architecture") == "llama", f"registered {response.json()}")
    return f"model {name!r} registered from {folder}"


def shutdown(process: BackendProcess) -> str:
    report = process.stop(timeout=10)
    expect(not report.leftover_pids, f"processes left behind: {report.leftover_pids}")
    expect(report.graceful, f"did not exit by itself within 10 s (exit code {report.exit_code})")
    expect(report.exit_code == 0, f"exited with code {report.exit_code}")
    return f"exited 0 in {report.exit_seconds:.2f}s, nothing left behind"


# -- scenarios -------------------------------------------------------------------------------------------
Check = Callable[[BackendProcess], str]


@dataclass(frozen=True)
class Scenario:
    """Self-contained: ``prepare`` runs first on a server of its own (what the scenario needs to exist, such
    as a trained adapter), which then stops; then a fresh server on the same data dir (``data_dir``: a key,
    one per scenario) runs the named checks and stops gracefully."""

    title: str
    data_dir: str
    checks: tuple[tuple[str, Check], ...] = field(default_factory=tuple)
    prepare: tuple[tuple[str, Check], ...] = field(default_factory=tuple)


def first_use_scenarios(mode: str, *, manifest: Sequence[dict[str, Any]] = (), sidecar: bool = False,
                        onefile: bool = False) -> list[Scenario]:
    """What ``compile verify`` runs: the protocol on a fresh server, then every ML entry point used first
    by a fresh server of its own (generate, streamed generate, system, training, merge)."""
    launcher: tuple[tuple[str, Check], ...] = ()
    if sys.platform.startswith("linux") and onefile:
        launcher = (("onefile launcher memory", launcher_memory),)
    return [
        Scenario("first start, then generate first", "a", (
            ("health", lambda p: health(p, mode)),
            ("token", token),
            ("host check", host_check),
            ("data files", lambda p: data_files(p, manifest)),
            ("idle process", lambda p: idle_process(p, sidecar=sidecar)),
            *launcher,
            ("generate (first use)", generate),
        )),
        Scenario("streamed generate first", "b", (
            ("stream (first use)", lambda p: generate(p, stream=True)),
        )),
        Scenario("system first", "c", (
            ("ml imports (first use)", ml_stack),
        )),
        Scenario("train first", "d", (
            ("training (first use)", lambda p: train(p, adapter="verify-adapter")),
            ("generate with adapter", lambda p: generate(p, adapter="verify-adapter")),
        )),
        Scenario("merge first", "e", (
            ("merge (first use)", lambda p: merge(p, adapter="merge-adapter", name="verify-merged")),
            ("generate from merged", lambda p: generate(p, model="verify-merged")),
        ), prepare=(("training (to merge)", lambda p: train(p, adapter="merge-adapter", steps=2)),)),
    ]
