"""The GPU check, in one command: against a built artifact (or source), train a LoRA on ``cuda`` in
bfloat16, generate with the adapter, merge it, and report the device, the dtype, the peak GPU memory
torch allocated and the steps per second, as a table and as JSON.

    python scripts/gpu_check.py dist/nuitka-standalone-cuda
    python scripts/gpu_check.py dist/nuitka-standalone-cuda --steps 200 --dtype float16 --json out.json
    python scripts/gpu_check.py --source --device cpu --dtype float32   # the same steps, on this CPU

Exit codes: 0 every step ran on the GPU, 1 a step failed (the report says which and why), 2 usage,
3 no CUDA device here (the server says why: a CPU build of torch, or no GPU or driver).

It needs only the standard library and this repository (no torch): a GPU machine may have no package
index and receive only a copy of the working tree and the artifact.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend_client.manager import BackendProcess, LaunchSpec  # noqa: E402

MODEL, DATASET = "tiny-llama", "sample-instructions"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3


class StepFailed(Exception):
    pass


def expect(answer: Any, status: int, what: str) -> dict[str, Any]:
    if answer.status != status:
        raise StepFailed(f"{what}: HTTP {answer.status}: {answer.body[:600]!r}")
    return dict(answer.json()) if answer.body else {}


def wait_for_job(process: BackendProcess, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = expect(process.request("GET", f"/api/jobs/{job_id}"), 200, "read the job")
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise StepFailed(f"job {job_id} did not finish within {timeout:.0f}s")


def run_check(spec: LaunchSpec, args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    report: dict[str, Any] = {"steps": {}}
    process = BackendProcess(spec)
    try:
        process.wait_ready()
        system = expect(process.request("GET", "/api/system", timeout=600), 200, "system")
        ml = system.get("ml", {})
        report.update(mode=system.get("mode"), torch=ml.get("torch"), torch_cuda=ml.get("torch_cuda"),
                      cuda_available=ml.get("cuda_available"), gpu=ml.get("cuda_name"),
                      device_reason=ml.get("device_reason"))
        if args.device == "cuda" and not ml.get("cuda_available"):
            report["error"] = f"no CUDA device: {ml.get('device_reason')}"
            return EXIT_NO_GPU, report
        started = time.perf_counter()
        created = expect(process.request("POST", "/api/jobs", {
            "model": MODEL, "dataset": DATASET, "adapter_name": "gpu-check", "device": args.device, "dtype": args.dtype,
            "max_steps": args.steps, "checkpoint_every": 0, "batch_size": args.batch_size}), 202, "create the job")
        job = wait_for_job(process, created["id"], args.timeout)
        runtime = job.get("runtime") or {}
        report["steps"]["train"] = {"status": job["status"], "error": job.get("error"),
                                    "seconds": round(time.perf_counter() - started, 2)}
        report.update(device=runtime.get("device"), dtype=runtime.get("dtype"),
                      steps_per_second=runtime.get("steps_per_second"),
                      peak_gpu_memory_bytes=runtime.get("peak_gpu_memory_bytes"), loss=job.get("last_loss"))
        if job["status"] != "completed":
            raise StepFailed(f"training {job['status']}: {job.get('error')}")
        if (runtime.get("device"), runtime.get("dtype")) != (args.device, args.dtype):
            raise StepFailed(f"trained on {runtime.get('device')} in {runtime.get('dtype')}, "
                             f"not {args.device} in {args.dtype}")
        started = time.perf_counter()
        body = {"model": MODEL, "adapter": "gpu-check", "prompt": "Say hello.", "max_new_tokens": 16,
                "device": args.device}
        generated = expect(process.request("POST", "/api/generate", body, timeout=600), 200, "generate")
        report["steps"]["generate"] = {"device": generated.get("device"), "dtype": generated.get("dtype"),
                                       "new_tokens": generated.get("new_tokens"),
                                       "seconds": round(time.perf_counter() - started, 2)}
        if generated.get("device") != args.device:
            raise StepFailed(f"generated on {generated.get('device')}, not {args.device}")
        started = time.perf_counter()
        merged = expect(process.request("POST", "/api/adapters/gpu-check/merge", {"name": "gpu-check-merged"},
                                        timeout=600), 201, "merge")
        report["steps"]["merge"] = {"model": merged.get("id"), "seconds": round(time.perf_counter() - started, 2)}
        return EXIT_OK, report
    except StepFailed as exc:
        report["error"] = str(exc)
        return EXIT_FAILED, report
    finally:
        report["stop"] = str(process.stop(timeout=30))
        report["server_log_tail"] = process.stderr_tail(20) if report.get("error") else ""


def table(report: dict[str, Any]) -> str:
    peak = report.get("peak_gpu_memory_bytes")
    rows = [("mode", report.get("mode")), ("torch", f"{report.get('torch')} (CUDA {report.get('torch_cuda')})"),
            ("GPU", report.get("gpu")), ("device", report.get("device")), ("dtype", report.get("dtype")),
            ("peak GPU memory", f"{peak / 2**20:.1f} MiB" if peak else None),
            ("steps/s", report.get("steps_per_second")), ("final loss", report.get("loss"))]
    rows += [(f"{name}", json.dumps(step)) for name, step in report.get("steps", {}).items()]
    if report.get("error"):
        rows.append(("ERROR", report["error"]))
    return "\n".join(f"  {name:<16} {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", nargs="?", type=Path, help="dist/<variant> folder (or its executable)")
    parser.add_argument("--source", action="store_true", help="run the backend from source instead")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu runs the same steps on the CPU (to check the check where there is no GPU)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if bool(args.artifact) == args.source:
        parser.error("give an artifact or --source (one of them)")
    with tempfile.TemporaryDirectory(prefix="peft-gpu-check-") as scratch:
        data_dir = Path(scratch) / "data"
        if args.source:
            spec = LaunchSpec.source(data_dir, ready_timeout_s=300)
        else:
            from compile.artifacts import locate
            from compile.errors import ArtifactError

            try:
                spec = locate(args.artifact).launch_spec(data_dir, ready_timeout_s=600)
            except ArtifactError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USAGE
        code, report = run_check(spec, args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps({key: value for key, value in report.items() if key != "server_log_tail"}))
    return code


if __name__ == "__main__":
    sys.exit(main())
