"""``python -m tests [TIER ...]``: the test tiers, each a list of commands, run in order with its wall time.

    python -m tests            every tier CI runs: fast, builds, suite, bench (what proves the product)
    python -m tests fast       lint, types, unit tests and the behaviour suite against source (= ruff, mypy,
                               plain ``pytest``)
    python -m tests builds     the Nuitka standalone and onefile and the PyInstaller onedir baseline built,
                               ``compile verify`` on each, and the build tests (mutations of a build)
    python -m tests suite      the behaviour suite against the Nuitka standalone (all of it) and onefile (not
                               the slow tests)
    python -m tests bench      the benchmarks against the committed baseline, and the gate
    python -m tests nightly    what does not fit CI's hour: the slow tests against the onefile, the suite
                               against the PyInstaller onedir and onefile, the reproducers of the Nuitka patches, the memory-safety
                               check, the double build for reproducibility, schemathesis over 10,000 cases
    python -m tests cuda       the CUDA flavour: built, verified (every library loads), the suite against it
                               on the CPU, its PyInstaller baseline, and its startup against the CPU build's
                               (ci/nightly.yml runs nightly and cuda)
    python -m tests --list     the commands, without running them

``.ci/run`` runs the same tiers as its stages. Exit code: the first failing command's (1 if none says).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BENCH_BASELINE = "benchmarks/baseline/linux-x86_64.json"
HISTORY = str(Path.home() / ".cache" / "peft-engine" / "benchmark-history.jsonl")
CI_BUILDS = ("nuitka-standalone", "nuitka-onefile", "pyinstaller-onedir")  # built and tested by every CI run

Command = list[str]
TIERS: dict[str, list[Command]] = {
    "fast": [
        [PY, "-m", "ruff", "check", "."],
        [PY, "-m", "mypy"],
        [PY, "-m", "pytest", "-q", "--junitxml", "reports/junit/fast.xml"],  # unit + the behaviour suite against source
    ],
    "builds": [
        [PY, "-m", "compile", "doctor"],
        [PY, "-m", "compile", "standalone"],
        [PY, "-m", "compile", "onefile"],
        [PY, "-m", "compile", "pyinstaller", "--onedir"],
        *([PY, "-m", "compile", "verify", f"dist/{name}"] for name in CI_BUILDS),
        [PY, "-m", "compile", "report", "dist/nuitka-standalone"],
        [PY, "-m", "pytest", "-q", "-m", "build"],
    ],
    "suite": [  # each run's per-test results in reports/junit/ (CI keeps reports/ as an artifact)
        [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/nuitka-standalone",
         "--junitxml", "reports/junit/suite-nuitka-standalone.xml"],
        [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/nuitka-onefile", "-m", "not slow",
         "--junitxml", "reports/junit/suite-nuitka-onefile.xml"],
    ],
    "bench": [
        [PY, "-m", "benchmarks", "run", "--quick", "--baseline", BENCH_BASELINE, "--history", HISTORY],
        [PY, "-m", "benchmarks", "report", "--baseline", BENCH_BASELINE, "--history", HISTORY],
        [PY, "-m", "benchmarks", "compare", BENCH_BASELINE, "reports/results.json"],
    ],
    "nightly": [
        [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/nuitka-onefile", "-m", "slow"],
        [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/pyinstaller-onedir",
         "--junitxml", "reports/junit/nightly-pyinstaller-onedir.xml"],  # the baseline; CI verifies and measures it
        [PY, "-m", "compile", "pyinstaller", "--onefile"],
        [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/pyinstaller-onefile"],
        [PY, "-m", "compile.repro"],
        [PY, "scripts/memcheck.py"],
        [PY, "scripts/reproducible.py", "nuitka-standalone", "nuitka-onefile", "pyinstaller-onedir"],
        [PY, "scripts/onefile_side_by_side.py"],
        [PY, "scripts/delta_sizes.py", "--json", "reports/delta-sizes.json"],
        ["env", "PEFT_FUZZ_EXAMPLES=100", PY, "-m", "pytest", "-q", "-s", "tests/behaviour/test_fuzz.py", "--artifact",
         "dist/nuitka-standalone"],  # over 10,000 cases
    ],
}
TIERS["cuda"] = [
    [PY, "-m", "compile", "standalone", "--torch", "cuda"],
    [PY, "-m", "compile", "verify", "dist/nuitka-standalone-cuda"],
    [PY, "-m", "pytest", "-q", "-m", "build", "tests/integration/test_cuda_build.py"],
    [PY, "-m", "pytest", "-q", "tests/behaviour", "--artifact", "dist/nuitka-standalone-cuda", "-m", "not slow"],
    [PY, "-m", "compile", "pyinstaller", "--onedir", "--torch", "cuda"],
    [PY, "-m", "compile", "verify", "dist/pyinstaller-onedir-cuda"],
    [PY, "-m", "benchmarks", "run", "--quick", "--variants", "nuitka-standalone,nuitka-standalone-cuda",
     "--out", "reports/cuda-vs-cpu.json"],
]
DEFAULT = ("fast", "builds", "suite", "bench")


def run_tier(name: str) -> int:
    started = time.perf_counter()
    print(f"=== tier {name} ===", flush=True)
    for command in TIERS[name]:
        shown = " ".join(part if part != PY else "python" for part in command)
        print(f"--- $ {shown}", flush=True)
        began = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
        print(f"--- {time.perf_counter() - began:.0f}s: {shown}", flush=True)
        if code != 0:  # pytest's 5 (nothing collected) included: a selection that matches nothing is an error
            print(f"=== tier {name}: FAILED ({shown} exited {code}) after {time.perf_counter() - started:.0f}s ===")
            return code
    print(f"=== tier {name}: passed in {time.perf_counter() - started:.0f}s ===", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--list" in args:
        for name in [a for a in args if a != "--list"] or TIERS:
            print(f"{name}:")
            for command in TIERS[name]:
                print("  " + " ".join(part if part != PY else "python" for part in command))
        return 0
    unknown = [name for name in args if name not in TIERS]
    if unknown:
        print(f"unknown tier(s) {', '.join(unknown)}: use {', '.join(TIERS)}", file=sys.stderr)
        return 2
    timings = []
    for name in args or DEFAULT:
        started = time.perf_counter()
        code = run_tier(name)
        timings.append(f"{name} {time.perf_counter() - started:.0f}s")
        if code:
            print("tiers: " + ", ".join(timings))
            return code
    print("tiers: " + ", ".join(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
