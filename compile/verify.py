"""``python -m compile verify ARTIFACT``: start a built artifact as the desktop app would and prove it works.

First, inside the build without a server (``<executable> --self-check``, :mod:`backend.self_check`): every
shared library it ships loads, in dependency order, and ``import torch`` loads the torch of the build's
flavour (for the CUDA flavour, ``libtorch_cuda``) and answers whether CUDA is available without an error.
Then a thin runner of the scenarios in :mod:`backend_client.checks` (the same checks the HTTP behaviour suite
runs): the protocol on a fresh server (ready line, health, token, Host check, every declared data file
readable from inside, an idle server without the ML stack), then every ML entry point used *first* by
a fresh server of its own (generate, streamed generate, system, a LoRA training job, merge). Every
server must then stop gracefully with no process left behind. A failed check names what was seen and
the exception the server logged.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend_client import checks
from backend_client.checks import Check, CheckFailed, Scenario
from backend_client.manager import BackendProcess, LaunchSpec
from compile.artifacts import Artifact, locate
from compile.datafiles import MANIFEST_NAME, load_manifest
from compile.results import write_json_atomic
from compile.runner import query

VERIFY_RECORD = "verify.json"
READY_TIMEOUT_S = 180
SELF_CHECK_TIMEOUT_S = 600  # a CUDA onefile unpacks GBs on first start


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

    def self_check(self, check: str) -> str:
        """``<executable> --self-check CHECK`` (:mod:`backend.self_check`): its verdict and a summary."""
        spec = self.artifact.launch_spec(None)
        answer = query([*spec.command, "--self-check", check], env=spec.environment(), timeout=SELF_CHECK_TIMEOUT_S)
        if answer is None:
            raise CheckFailed(f"--self-check {check} did not finish within {SELF_CHECK_TIMEOUT_S}s")
        try:
            report = json.loads(answer.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError) as exc:
            raise CheckFailed(f"--self-check {check} exited {answer.returncode} without a report: "
                              f"{(answer.stderr or answer.stdout)[-1500:]}") from exc
        if answer.returncode == 2:
            return f"nothing to check: {report.get('reason')}"
        if answer.returncode != 0 or not report.get("passed"):
            raise CheckFailed(f"--self-check {check} failed: {self_check_problems(report)}")
        return self_check_summary(report)

    def run(self) -> list[CheckResult]:
        self.log(" inside the build (no server):")
        for check in ("libraries", "torch"):
            self.record("inside the build", f"self-check {check}", functools.partial(self.self_check, check))
        manifest = load_manifest(self.artifact.folder / MANIFEST_NAME)
        sidecar = bool(self.artifact.record.get("sidecar")) and self.artifact.variant.tool == "nuitka"
        variant = self.artifact.variant
        for scenario in checks.first_use_scenarios(variant.name, manifest=manifest, sidecar=sidecar,
                                                   onefile=variant.onefile):
            self.run_scenario(scenario)
        return self.results


def self_check_problems(report: dict[str, Any]) -> str:
    if report.get("check") == "torch":
        return "; ".join(report.get("problems") or []) or str(report)[:1500]
    items = [f"{item['path']} needs {', '.join(item['needs'])}, which the build does not ship"
             for item in report.get("outside", [])]
    items += [f"{item['path']}: {item['error']}" for item in report.get("failed", []) + report.get("unreadable", [])]
    if not report.get("libraries"):
        items.append("no shared library found to check")
    shown = items[:8]
    return "; ".join(shown) + (f" (and {len(items) - len(shown)} more)" if len(items) > len(shown) else "")


def self_check_summary(report: dict[str, Any]) -> str:
    if report.get("check") == "torch":
        loaded = len(report.get("cuda_libraries_loaded") or [])
        return (f"torch {report['torch']} (CUDA {report['torch_cuda'] or 'none'}, {loaded} CUDA libraries loaded); "
                f"{report['device_reason']}")
    driver = report.get("needs_driver") or []
    inside = report.get("loaded_as_dependency") or []
    return (f"{report['loaded']} of {report['libraries']} libraries loaded in dependency order"
            + (f", {len(inside)} inside the library that needs it" if inside else "")
            + (f", {len(driver)} need the NVIDIA driver, absent here" if driver else "")
            + f"; from the system: {', '.join(report.get('system') or []) or 'nothing'}")


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
