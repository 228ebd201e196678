"""Two onefiles of the same version but different code, started alternately and at the same time: each
must run its own code, and neither may break the other by rewriting files under it.

    python scripts/onefile_side_by_side.py            # builds B from a clone of HEAD with one change
    python scripts/onefile_side_by_side.py --keep /tmp/sbs

A is ``dist/nuitka-onefile`` (build it first); B is the same commit with the API description changed, a
change ``GET /openapi.json`` shows. Both unpack under the user cache, into ``{VERSION}-{BUILD}``
(``compile/plan.py``'s build id). Exit code 0 when every start ran its own code and stopped cleanly, 1
otherwise, 2 when the build of B fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend_client.manager import BackendProcess  # noqa: E402
from compile.artifacts import Artifact, locate  # noqa: E402

MARK = "Side-by-side build B."


def build_b(scratch: Path) -> Path:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    clone = scratch / "b"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    app = clone / "backend" / "app.py"
    source = app.read_text(encoding="utf-8")
    app.write_text(source.replace('description="Local LoRA', f'description="{MARK} Local LoRA'), encoding="utf-8")
    with (scratch / "b.log").open("w", encoding="utf-8") as log:
        result = subprocess.run([sys.executable, "-m", "compile", "onefile", "-q"], cwd=clone, stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"building B failed ({result.returncode}): see {scratch / 'b.log'}")
    return clone / "dist" / "nuitka-onefile"


def description(process: BackendProcess) -> str:
    return str(process.request("GET", "/openapi.json", auth=False).json()["info"]["description"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args(argv)
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="peft-sbs-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        a = locate(ROOT / "dist" / "nuitka-onefile")
        b = locate(build_b(scratch))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec_a = a.record["command"][next(i for i, arg in enumerate(a.record["command"])
                                      if arg.startswith("--onefile-tempdir-spec"))]
    spec_b = b.record["command"][next(i for i, arg in enumerate(b.record["command"])
                                      if arg.startswith("--onefile-tempdir-spec"))]
    print(f"A unpacks to {spec_a.split('=', 1)[1]}\nB unpacks to {spec_b.split('=', 1)[1]}")
    failures = []

    def start(artifact: Artifact, name: str, index: int) -> BackendProcess:
        process = BackendProcess(artifact.launch_spec(scratch / f"data-{name}-{index}", ready_timeout_s=300))
        process.wait_ready()
        return process

    def check(process: BackendProcess, name: str, when: str) -> None:
        own = MARK in description(process)
        if own != (name == "B"):
            failures.append(f"{when}: {name} ran {'B' if own else 'A'}'s code")

    try:
        for index, name in enumerate(["A", "B", "A", "B"]):  # alternately
            process = start(a if name == "A" else b, name, index)
            check(process, name, f"alternate start {index + 1}")
            report = process.stop(timeout=10)
            if report.exit_code != 0 or report.leftover_pids:
                failures.append(f"alternate start {index + 1}: {name} stopped with {report}")
        first, second = start(a, "A", 10), start(b, "B", 11)  # at the same time
        check(first, "A", "together")
        check(second, "B", "together")
        for process, name in ((first, "A"), (second, "B")):
            report = process.stop(timeout=10)
            if report.exit_code != 0 or report.leftover_pids:
                failures.append(f"together: {name} stopped with {report}")
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    for failure in failures:
        print(f"FAILED {failure}")
    print("each onefile ran its own code, alternately and together" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
