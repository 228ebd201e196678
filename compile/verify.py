"""``python -m compile verify ARTIFACT``: launch a built artifact through the service manager and prove
it works: ready line, health, token, every declared data file readable from inside, an idle server
without the ML stack that released its startup memory, the ML stack
importable inside, a short LoRA training job and a generation with its adapter, a graceful shutdown
and no process left behind."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.service_manager import BackendProcess, LaunchSpec, ServiceManagerError
from compile.datafiles import MANIFEST_NAME, load_manifest
from compile.errors import ArtifactError
from compile.results import BUILD_RECORD, load_build_record, write_json_atomic

VERIFY_RECORD = "verify.json"
TINY_MODEL = "tiny-llama"
SAMPLE_DATASET = "sample-instructions"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class Artifact:
    folder: Path  # dist/<variant>
    executable: Path
    variant: str
    record: dict[str, Any]


def locate(path: Path) -> Artifact:
    """Accept ``dist/<variant>``, its executable, or anything inside it that has a build.json above."""
    path = path.resolve()
    for folder in [path, *path.parents]:
        record_path = folder / BUILD_RECORD
        if record_path.is_file():
            try:
                record = load_build_record(record_path)
            except ValueError as exc:
                raise ArtifactError(str(exc)) from exc
            executable = folder / record["executable"]
            if not executable.exists():
                raise ArtifactError(f"{record_path} names {executable}, which does not exist",
                                    hint="rebuild it with python -m compile " + record["variant"].split("-")[-1])
            return Artifact(folder=folder, executable=executable, variant=record["variant"], record=record)
    raise ArtifactError(f"no {BUILD_RECORD} found at or above {path}",
                        hint="pass a dist/<variant> folder written by python -m compile")


class Verifier:
    def __init__(self, artifact: Artifact, data_dir: Path, log: Callable[[str], None] = print):
        self.artifact = artifact
        self.data_dir = data_dir
        self.log = log
        self.results: list[CheckResult] = []
        self.process: BackendProcess | None = None

    def check(self, name: str, action: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail, ok = action(), True
        except (AssertionError, ServiceManagerError, OSError, KeyError, ValueError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        result = CheckResult(name, ok, detail, round(time.perf_counter() - started, 3))
        self.results.append(result)
        self.log(f"  [{'ok  ' if ok else 'FAIL'}] {name:<22} {detail} ({result.seconds:.2f}s)")
        return ok

    @property
    def api(self) -> BackendProcess:
        assert self.process is not None, "backend not started"
        return self.process

    def run(self) -> list[CheckResult]:
        spec = LaunchSpec.artifact(self.artifact.executable, self.data_dir, ready_timeout_s=180)
        self.process = BackendProcess(spec)
        if self.check("ready line", self._ready):
            self.check("health", self._health)
            self.check("token", self._token)
            self.check("data files", self._data_files)
            self.check("idle process", self._idle_process)
            # Each step needs the one before: no training without torch, no generation without an adapter.
            if self.check("ml imports", self._ml_imports) and self.check("training job", self._train):
                self.check("generation", self._generate)
        self.check("graceful shutdown", self._shutdown)
        return self.results

    def _ready(self) -> str:
        ready = self.api.wait_ready()
        expected = self.artifact.variant
        assert ready.mode == expected, f"ready line says mode {ready.mode!r}, expected {expected!r}"
        return f"port {ready.port}, pid {ready.pid}, mode {ready.mode}, version {ready.version}"

    def _health(self) -> str:
        response = self.api.request("GET", "/health", auth=False)
        assert response.status == 200, f"status {response.status}"
        body = response.json()
        assert body["status"] == "ok" and body["mode"] == self.artifact.variant, body
        return "200"

    def _token(self) -> str:
        anonymous = self.api.request("GET", "/api/models", auth=False).status
        wrong = self.api.request("GET", "/api/models", auth=False, headers={"Authorization": "Bearer wrong"}).status
        right = self.api.request("GET", "/api/models").status
        assert (anonymous, wrong, right) == (401, 401, 200), f"got {anonymous}, {wrong}, {right}"
        return "401 without / with a wrong token, 200 with it"

    def _data_files(self) -> str:
        manifest = load_manifest(self.artifact.folder / MANIFEST_NAME)
        paths = [str(entry["path"]) for entry in manifest]
        response = self.api.request("POST", "/api/system/bundle-files", {"paths": paths})
        assert response.status == 200, f"status {response.status}: {response.body[:200]!r}"
        seen = {entry["path"]: entry for entry in response.json()["files"]}
        problems = []
        for entry in manifest:
            found = seen.get(str(entry["path"]), {})
            if not found.get("ok"):
                problems.append(f"{entry['path']} missing or unreadable ({found.get('error', 'no answer')})")
            elif found["sha256"] != entry["sha256"]:
                problems.append(f"{entry['path']} differs from the declared file")
        assert not problems, "; ".join(problems)
        return f"{len(paths)} declared files present and identical"

    def _idle_process(self) -> str:
        """Before anything asks for it, the server holds no ML package; on Linux it has given back the
        pages only startup used (backend/memory_release.py)."""
        info = self.api.request("GET", "/api/system/process").json()
        heavy = sorted({"torch", "transformers", "peft"} & set(info["modules"]))
        assert not heavy, f"imported at startup: {', '.join(heavy)}"
        detail = f"{len(info['modules'])} modules, no ML stack"
        if sys.platform.startswith("linux"):
            deadline = time.monotonic() + 10
            while info["startup_release"] is None and time.monotonic() < deadline:
                time.sleep(0.1)
                info = self.api.request("GET", "/api/system/process").json()
            released = info["startup_release"]
            assert released is not None, "startup memory was not released within 10 s"
            detail += (f"; released {released['file_kib'] / 1024:.1f} MiB of startup pages, "
                       f"PSS now {info['memory_bytes']['pss'] / 2**20:.1f} MiB")
        return detail

    def _ml_imports(self) -> str:
        response = self.api.request("GET", "/api/system", timeout=300)
        assert response.status == 200, f"status {response.status}: {response.body[:300]!r}"
        ml = response.json()["ml"]
        return f"torch {ml['torch']}, transformers {ml['transformers']}, peft {ml['peft']}"

    def _train(self) -> str:
        body = {"model": TINY_MODEL, "dataset": SAMPLE_DATASET, "max_steps": 6, "batch_size": 4,
                "learning_rate": 0.02, "checkpoint_every": 3, "adapter_name": "verify-adapter"}
        response = self.api.request("POST", "/api/jobs", body)
        assert response.status == 202, f"status {response.status}: {response.body[:300]!r}"
        job_id = response.json()["id"]
        events = self.api.stream_events(f"/api/jobs/{job_id}/events", timeout=600)
        final = events[-1]["data"] if events else {}
        steps = [event["data"] for event in events if event.get("event") == "step"]
        assert final.get("status") == "completed", f"job ended {final}"
        assert len(steps) == 6, f"{len(steps)} step events"
        return f"6 steps, loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}"

    def _generate(self) -> str:
        body = {"model": TINY_MODEL, "adapter": "verify-adapter", "prompt": "What is 2 plus 2?", "max_new_tokens": 8}
        response = self.api.request("POST", "/api/generate", body, timeout=300)
        assert response.status == 200, f"status {response.status}: {response.body[:300]!r}"
        result = response.json()
        assert result["new_tokens"] > 0, result
        return f"{result['new_tokens']} tokens: {result['text']!r}"

    def _shutdown(self) -> str:
        report = self.api.stop(timeout=10)
        assert not report.leftover_pids, f"processes left behind: {report.leftover_pids}"
        assert report.graceful, f"did not exit by itself within 10s (exit code {report.exit_code})"
        return f"exited {report.exit_code} in {report.seconds:.2f}s, nothing left behind"


def verify(path: Path, log: Callable[[str], None] = print) -> tuple[Artifact, list[CheckResult]]:
    artifact = locate(path)
    log(f"verifying {artifact.variant}: {artifact.executable}")
    with tempfile.TemporaryDirectory(prefix="peft-verify-") as data_dir:
        verifier = Verifier(artifact, Path(data_dir), log)
        try:
            results = verifier.run()
        finally:
            if verifier.process is not None and verifier.process.popen.poll() is None:
                verifier.process.stop(timeout=2, via_http=False)
    write_json_atomic(artifact.folder / VERIFY_RECORD, {
        "schema_version": 1, "variant": artifact.variant, "checked_at": time.time(),
        "ok": all(result.ok for result in results), "checks": [asdict(result) for result in results],
    })
    return artifact, results
