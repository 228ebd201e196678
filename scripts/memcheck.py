"""The memory-safety check of the patched Nuitka runtime, in one command: a standalone built to honour
``PYTHONMALLOC`` (the product build ignores every ``PYTHON*`` variable), run through startup, a training
job, a generation and SIGTERM, under Python's debug allocator and then under valgrind memcheck.

    python scripts/memcheck.py                     # build dist-memcheck/, both checks (valgrind: ~30 min)
    python scripts/memcheck.py --skip-build --debug-only
    python scripts/memcheck.py --out reports/memcheck

- **Debug allocator** (``PYTHONMALLOC=debug``, then ``PYTHONDEVMODE=1``): every Python allocation is
  padded and checked on free; a write past a block, a double free or an allocator mismatch is a fatal
  error. The check passes when both runs train, generate and exit 0 with no such report.
- **valgrind memcheck** (``PYTHONMALLOC=malloc``, children traced: the training worker too): invalid
  reads and writes, uses of uninitialised values, and definite leaks. Each error is attributed to where
  its innermost frame lies: the compiled binary (Nuitka's runtime, our patched code, libpython linked
  into it) or a library (torch, the C extensions). Errors in the binary fail the check; those in
  libraries are listed. Frames in the C files our patches touch are named.

Writes ``<out>/memcheck.json`` (and valgrind's XML per process). Exit codes: 0 clean, 1 a finding in
the binary or a failed run, 2 usage or a failed build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend_client.manager import BackendProcess, LaunchSpec  # noqa: E402

DIST, BUILD = "dist-memcheck", "build-memcheck"
FATAL_MARKERS = ("Fatal Python error", "Debug memory block", "bad leading pad byte", "bad trailing pad byte",
                 "Segmentation fault", "was allocated with", "double free")
ERROR_KINDS = ("InvalidRead", "InvalidWrite", "InvalidFree", "MismatchedFree", "UninitCondition", "UninitValue",
               "SyscallParam", "Leak_DefinitelyLost")


def patched_sources() -> set[str]:
    """The C files the carried Nuitka patches change (from the diff headers)."""
    names = set()
    for patch in (ROOT / "compile" / "patches").glob("nuitka-*/*.patch"):
        for line in patch.read_text(encoding="utf-8").splitlines():
            if line.startswith("+++ b/") and line.endswith((".c", ".h")):
                names.add(Path(line[6:]).name)
    return names


def build() -> Path:
    env = {**os.environ, "COMPILE_PYTHON_FLAGS": "", "COMPILE_DIST_DIR": DIST, "COMPILE_BUILD_DIR": BUILD}
    print(f"building {DIST}/nuitka-standalone (python-flags emptied: PYTHONMALLOC is honoured)", flush=True)
    subprocess.run([sys.executable, "-m", "compile", "standalone", "-q"], cwd=ROOT, env=env, check=True)
    return ROOT / DIST / "nuitka-standalone"


def executable(folder: Path) -> Path:
    record = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    return folder / record["executable"]


def exercise(spec: LaunchSpec, job_timeout: float) -> dict[str, Any]:
    """Start, one 2-step training job, one generation, SIGTERM: what each step gave, and the exit code."""
    process = BackendProcess(spec)
    outcome: dict[str, Any] = {}
    try:
        process.wait_ready()
        created = process.request("POST", "/api/jobs", {"model": "tiny-llama", "dataset": "sample-instructions",
                                                         "max_steps": 2, "checkpoint_every": 0}, timeout=600)
        job_id = created.json()["id"]
        deadline = time.monotonic() + job_timeout
        while time.monotonic() < deadline:
            job = process.request("GET", f"/api/jobs/{job_id}", timeout=600).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(2)
        outcome["job"] = job["status"] + (f": {job['error']}" if job.get("error") else "")
        answer = process.request("POST", "/api/generate", {"model": "tiny-llama", "prompt": "hi", "max_new_tokens": 4},
                                 timeout=job_timeout)
        outcome["generate"] = answer.status
        process.popen.send_signal(signal.SIGTERM)
        outcome["exit_code"] = process.popen.wait(job_timeout)
    except Exception as exc:  # a crash at any step is the finding: report it with the server's words
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        outcome["stderr_tail"] = process.stderr_tail(40)
        if process.popen.poll() is None:
            process.stop(timeout=10, via_http=False)
    outcome["fatal"] = [marker for marker in FATAL_MARKERS if marker in outcome["stderr_tail"]]
    outcome["ok"] = (outcome.get("job") == "completed" and outcome.get("generate") == 200
                     and outcome.get("exit_code") == 0 and not outcome["fatal"])
    return outcome


def debug_allocator(folder: Path, scratch: Path) -> dict[str, Any]:
    results = {}
    for name, env in (("PYTHONMALLOC=debug", {"PYTHONMALLOC": "debug"}), ("PYTHONDEVMODE=1", {"PYTHONDEVMODE": "1"})):
        spec = LaunchSpec.artifact(executable(folder), scratch / f"data-{len(results)}", env=env, ready_timeout_s=300)
        print(f"debug allocator: {name} ...", flush=True)
        results[name] = exercise(spec, job_timeout=600)
        shown = {key: value for key, value in results[name].items() if key != "stderr_tail"}
        print(f"  {'ok' if results[name]['ok'] else 'FAILED'}: {shown}")
    return results


def valgrind(folder: Path, scratch: Path, out: Path) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        return {"ok": False, "error": "valgrind is not installed (apt-get install valgrind)"}
    for old in out.glob("memcheck.*.xml"):
        old.unlink()
    command = ("valgrind", "--tool=memcheck", "--trace-children=yes", "--child-silent-after-fork=yes",
               "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
               "--num-callers=30", "--xml=yes", f"--xml-file={out}/memcheck.%p.xml", str(executable(folder)))
    spec = LaunchSpec(command=command, data_dir=scratch / "data-valgrind", env={"PYTHONMALLOC": "malloc"},
                      ready_timeout_s=1800)
    print("valgrind memcheck: start, train, generate, SIGTERM (tens of minutes) ...", flush=True)
    run = exercise(spec, job_timeout=3600)
    binary = str(executable(folder).resolve())
    patched = patched_sources()
    findings: list[dict[str, Any]] = []
    for path in sorted(out.glob("memcheck.*.xml")):
        try:
            tree = ElementTree.parse(path)
        except ElementTree.ParseError as exc:  # a process killed mid-write leaves a truncated file
            findings.append({"file": path.name, "kind": "unparsed", "where": "?", "detail": str(exc)})
            continue
        for error in tree.getroot().iter("error"):
            kind = error.findtext("kind") or "?"
            frames = [{"fn": frame.findtext("fn") or "?", "obj": frame.findtext("obj") or "",
                       "file": frame.findtext("file") or "", "line": frame.findtext("line") or ""}
                      for frame in error.iter("frame")]
            top = next((frame for frame in frames if frame["obj"]), {"obj": "", "fn": "?", "file": ""})
            in_binary = any(frame["obj"] == binary for frame in frames[:3])
            findings.append({"file": path.name, "kind": kind, "where": "binary" if in_binary else Path(top["obj"]).name,
                             "function": top["fn"], "patched_source": any(frame["file"] in patched for frame in frames),
                             "what": (error.findtext("what") or error.findtext("xwhat/text") or "")[:200],
                             "frames": [f"{frame['fn']} ({Path(frame['obj']).name}"
                                        f"{':' + frame['file'] + ':' + frame['line'] if frame['file'] else ''})"
                                        for frame in frames[:8]]})
    counts = Counter((finding["kind"], finding["where"] == "binary") for finding in findings)
    in_binary = [finding for finding in findings if finding["where"] == "binary" and finding["kind"] in ERROR_KINDS]
    return {"ok": run["ok"] and not in_binary, "run": run, "processes": len(list(out.glob("memcheck.*.xml"))),
            "counts": {f"{kind} ({'binary' if binary_side else 'libraries'})": count
                       for (kind, binary_side), count in sorted(counts.items())},
            "in_binary": in_binary, "in_libraries": [finding for finding in findings if finding not in in_binary][:50]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-build", action="store_true", help=f"use the {DIST}/nuitka-standalone there is")
    parser.add_argument("--debug-only", action="store_true")
    parser.add_argument("--valgrind-only", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "memcheck")
    args = parser.parse_args(argv)
    try:
        folder = ROOT / DIST / "nuitka-standalone" if args.skip_build else build()
    except subprocess.CalledProcessError as exc:
        print(f"error: the memcheck build failed ({exc.returncode})", file=sys.stderr)
        return 2
    if not (folder / "build.json").is_file():
        print(f"error: no build at {folder}: run without --skip-build", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"build": str(folder), "patched_sources": sorted(patched_sources())}
    with tempfile.TemporaryDirectory(prefix="peft-memcheck-") as scratch:
        if not args.valgrind_only:
            report["debug_allocator"] = debug_allocator(folder, Path(scratch))
        if not args.debug_only:
            report["valgrind"] = valgrind(folder, Path(scratch), args.out)
    (args.out / "memcheck.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    ok = all(result["ok"] for result in report.get("debug_allocator", {}).values())
    if "valgrind" in report:
        summary = report["valgrind"]
        ok = ok and summary["ok"]
        print(f"valgrind: {summary.get('processes', 0)} processes; {json.dumps(summary.get('counts', {}))}")
        for finding in summary.get("in_binary", [])[:10]:
            print(f"  in the binary: {finding['kind']} in {finding['function']}: {' <- '.join(finding['frames'][:4])}")
    print(f"memcheck: {'clean' if ok else 'FINDINGS'} (report: {args.out / 'memcheck.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
