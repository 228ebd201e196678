"""Repeat each fault many times against one variant and tabulate how every job ended.

    python scripts/fault_trials.py [--artifact dist/nuitka-standalone] [--trials 5]

Each trial starts a fresh server, starts a training job, injects one fault, and records the job's final
state, whether its event stream ended by itself, whether its worker is gone, and whether the server
still answers. Faults: the injected points of backend/faults.py, ``kill -9`` of the worker, ``kill
-9`` of the server (then a restart), SIGTERM while training (then a restart), and (as root) a full
disk. The behaviour suite asserts the same outcomes once each; this counts them over many trials.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_client.manager import BackendProcess, LaunchSpec
from backend_client.process_tree import pid_alive
from tests.support.disks import fill, small_disk

FINAL = ("completed", "cancelled", "failed", "interrupted")
JOB = {"model": "tiny-llama", "dataset": "sample-instructions", "max_steps": 100_000, "checkpoint_every": 5}


def spec_for(artifact: str | None, data_dir: Path, env: dict[str, str] | None = None) -> LaunchSpec:
    if artifact is None:
        return LaunchSpec.source(data_dir, env=env or {})
    from compile.artifacts import locate

    return locate(Path(artifact)).launch_spec(data_dir, env=env or {})


def wait(predicate: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def job_state(server: BackendProcess, job_id: str) -> dict:
    return server.request("GET", f"/api/jobs/{job_id}").json()


def worker_pid(server: BackendProcess, job_id: str) -> int | None:
    events = server.iter_events(f"/api/jobs/{job_id}/events", timeout=60)
    try:
        for event in events:
            if event["data"].get("status") == "running":
                return int(event["data"]["worker_pid"])
    finally:
        events.close()  # type: ignore[attr-defined]
    return None


def outcome(server: BackendProcess, job_id: str, worker: int | None) -> str:
    ended = wait(lambda: (j := job_state(server, job_id))["status"] in FINAL and j, 120)
    if not ended:
        return "STUCK " + job_state(server, job_id)["status"]
    try:
        server.stream_events(f"/api/jobs/{job_id}/events", timeout=20)
        stream = "stream ended"
    except Exception as exc:
        stream = f"STREAM {type(exc).__name__}"
    gone = worker is None or wait(lambda: not pid_alive(worker), 10)
    serving = server.request("GET", "/health", auth=False).status == 200
    return f"{ended['status']}, {stream}, {'worker gone' if gone else 'WORKER LEFT'}, " \
           f"{'serving' if serving else 'NOT SERVING'}"


def trial_injected(artifact: str | None, point: str, scratch: Path) -> str:
    server = BackendProcess(spec_for(artifact, scratch, {"PEFT_ENGINE_FAULTS": point}))
    try:
        server.wait_ready()
        job_id = server.request("POST", "/api/jobs", JOB).json()["id"]
        return outcome(server, job_id, None)
    finally:
        server.stop()


def trial_signal(artifact: str | None, target: str, scratch: Path) -> str:
    server = BackendProcess(spec_for(artifact, scratch))
    try:
        server.wait_ready()
        job_id = server.request("POST", "/api/jobs", JOB).json()["id"]
        wait(lambda: job_state(server, job_id)["current_step"] >= 6, 180)
        worker = worker_pid(server, job_id)
        if target == "worker":
            os.kill(worker, signal.SIGKILL)  # type: ignore[arg-type]
            return outcome(server, job_id, worker)
        os.kill(server.server_pid, signal.SIGKILL if target == "server" else signal.SIGTERM)
        server.popen.wait(10)
        gone = wait(lambda: not pid_alive(worker), 5)  # type: ignore[arg-type]
    finally:
        server.stop()
    again = BackendProcess(spec_for(artifact, scratch))
    try:
        again.wait_ready()
        state = job_state(again, job_id)
        return f"{state['status']} after restart (checkpoint at step {state['checkpoint_step']}), " \
               f"{'worker gone' if gone else 'WORKER LEFT'}"
    finally:
        again.stop()


def trial_full_disk(artifact: str | None, scratch: Path) -> str:
    with small_disk(24) as disk:
        server = BackendProcess(spec_for(artifact, disk / "data"))
        try:
            server.wait_ready()
            job_id = server.request("POST", "/api/jobs", JOB).json()["id"]
            wait(lambda: job_state(server, job_id)["current_step"] >= 3, 180)
            worker = worker_pid(server, job_id)
            filler = fill(disk)
            result = outcome(server, job_id, worker)
            upload = server.request("POST", "/api/datasets?name=x", raw_body=b'{"text": "x"}\n' * 2000).status
            filler.unlink()
            resumed = server.request("POST", f"/api/jobs/{job_id}/resume").status
            return f"{result}; upload {upload}; after freeing space: resume {resumed}"
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", help="a dist/<variant> folder (default: source)")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    faults: list[tuple[str, Callable[[Path], str]]] = [
        (f"PEFT_ENGINE_FAULTS={point}", lambda scratch, point=point: trial_injected(args.artifact, point, scratch))
        for point in ("worker-start", "worker-step", "monitor-write", "job-start")
    ]
    faults += [(f"{name} while training", lambda scratch, target=target: trial_signal(args.artifact, target, scratch))
               for name, target in (("kill -9 of the worker", "worker"), ("kill -9 of the server", "server"),
                                    ("SIGTERM to the server", "sigterm"))]
    if os.geteuid() == 0:
        faults.append(("full disk (tmpfs filled while training)",
                       lambda scratch: trial_full_disk(args.artifact, scratch)))
    print("| fault | trials | outcomes |\n|---|---|---|")
    for name, trial in faults:
        seen: dict[str, int] = {}
        for _ in range(args.trials):
            with tempfile.TemporaryDirectory(prefix="peft-fault-") as scratch:
                result = trial(Path(scratch))
            seen[result] = seen.get(result, 0) + 1
        print(f"| {name} | {args.trials} | " + "; ".join(f"{count}× {text}" for text, count in seen.items()) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
