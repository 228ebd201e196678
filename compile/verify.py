"""``python -m compile verify ARTIFACT``: start a built artifact as the desktop app would and prove it works.

A thin runner of the scenarios in :mod:`backend_client.checks` (the same checks the HTTP behaviour suite
runs): the protocol on a fresh server (ready line, health, token, Host check, every declared data file
readable from inside, an idle server without the ML stack), then every ML entry point used *first* by
a fresh server of its own (generate, streamed generate, system, a LoRA training job, merge). Every
server must then stop gracefully with no process left behind. A failed check names what was seen and
the exception the server logged.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from backend_client import checks
from backend_client.checks import Check, CheckFailed, Scenario
from backend_client.manager import BackendProcess, LaunchSpec
from compile.artifacts import Artifact, locate
from compile.datafiles import MANIFEST_NAME, load_manifest
from compile.results import write_json_atomic

VERIFY_RECORD = "verify.json"
READY_TIMEOUT_S = 180


@dataclass
class CheckResult:
    scenario: str
    name: str
    ok: bool
    detail: str
    seconds: float


class Verifier:
    def __init__(self, artifact: Artifact, scratch: Path, log: Callable[[str], None] = print):
        self.artifact = artifact
        self.scratch = scratch
        self.log = log
        self.results: list[CheckResult] = []

    def record(self, scenario: str, name: str, action: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail, ok = action(), True
        except Exception as exc:  # anything a check raises fails that check, never the run
            detail = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
            ok = False
        result = CheckResult(scenario, name, ok, detail, round(time.perf_counter() - started, 3))
        self.results.append(result)
        self.log(f"  [{'ok  ' if ok else 'FAIL'}] {name:<24} {detail} ({result.seconds:.2f}s)")
        return ok

    def run_scenario(self, scenario: Scenario) -> None:
        self.log(f" {scenario.title}:")
        spec = self.artifact.launch_spec(self.scratch / scenario.data_dir, ready_timeout_s=READY_TIMEOUT_S)
        if scenario.prepare:
            self.run_server(scenario, spec, scenario.prepare, "prepared")
        self.run_server(scenario, spec, scenario.checks, "graceful shutdown")

    def run_server(self, scenario: Scenario, spec: LaunchSpec, named_checks: tuple[tuple[str, Check], ...],
                   stop_name: str) -> None:
        process = BackendProcess(spec)
        try:
            mode = self.artifact.variant.name
            if self.record(scenario.title, "ready line", lambda: checks.ready_line(process, mode)):
                for name, check in named_checks:  # every check runs: each failure is reported
                    self.record(scenario.title, name, functools.partial(check, process))
            self.record(scenario.title, stop_name, lambda: checks.shutdown(process))
        finally:
            if process.popen.poll() is None:
                process.stop(timeout=2, via_http=False)

    def run(self) -> list[CheckResult]:
        manifest = load_manifest(self.artifact.folder / MANIFEST_NAME)
        sidecar = bool(self.artifact.record.get("sidecar")) and self.artifact.variant.tool == "nuitka"
        variant = self.artifact.variant
        for scenario in checks.first_use_scenarios(variant.name, manifest=manifest, sidecar=sidecar,
                                                   onefile=variant.onefile):
            self.run_scenario(scenario)
        return self.results


def verify(path: Path, log: Callable[[str], None] = print) -> tuple[Artifact, list[CheckResult]]:
    artifact = locate(path)
    log(f"verifying {artifact.variant.name}: {artifact.executable}")
    with tempfile.TemporaryDirectory(prefix="peft-verify-") as scratch:
        results = Verifier(artifact, Path(scratch), log).run()
    try:
        write_json_atomic(artifact.folder / VERIFY_RECORD, {
            "schema_version": 2, "variant": artifact.variant.name, "checked_at": time.time(),
            "ok": all(result.ok for result in results), "checks": [asdict(result) for result in results],
        })
    except OSError as exc:  # a read-only install: the verdict is still printed and in the exit code
        log(f"  (could not write {artifact.folder / VERIFY_RECORD}: {exc.strerror or exc})")
    return artifact, results
