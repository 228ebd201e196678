"""What an update ships, measured: build the standalone from HEAD and again with one change each, and
size the delta (``python -m compile delta``) against the full folder.

    python scripts/delta_sizes.py                  # every scenario below (each a clone and a build)
    python scripts/delta_sizes.py --only backend-line web-stack

Scenarios:
- ``backend-line``: one line of our code changed (a log message in ``backend/main.py``);
- ``web-stack``: a web-stack dependency at another release (starlette 1.10.0 -> 1.9.0);
- ``transformers``: transformers at its next release (5.24.0 -> 5.25.0).

A torch change is not built here (no other CPU torch is installed on this machine): every file of the
torch layer differs between two torch builds, so its delta is at least that layer, which the table
gives from the manifest (``layers.json``) as a bound, marked so.

Builds are reproducible (``scripts/reproducible.py``), so the unchanged build of HEAD and a changed one
differ only where the change reaches. Exit code 0, 2 when a build fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compile.delta import make_delta  # noqa: E402

VARIANT = "nuitka-standalone"


def edit(path: str, pattern: str, replacement: str) -> Callable[[Path], None]:
    def change(clone: Path) -> None:
        target = clone / path
        text = target.read_text(encoding="utf-8")
        changed, count = re.subn(pattern, replacement, text, count=1)
        if count != 1:
            raise RuntimeError(f"{path}: {pattern!r} not found")
        target.write_text(changed, encoding="utf-8")
    return change


SCENARIOS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "backend-line": ("one line of backend code", edit("backend/main.py", r'"peft_engine: cannot use the data dir: ',
                                                      '"peft_engine: the data dir cannot be used: ')),
    "web-stack": ("starlette 1.10.0 -> 1.9.0", edit("pyproject.toml", r'"starlette==1\.10\.0"', '"starlette==1.9.0"')),
    "transformers": ("transformers 5.24.0 -> 5.25.0",
                     edit("pyproject.toml", r'"transformers==5\.24\.0"', '"transformers==5.25.0"')),
}


def clone_and_build(commit: str, target: Path, change: Callable[[Path], None] | None) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", commit], check=True)
    if change is not None:
        change(target)
    log = target.with_suffix(".log")
    with log.open("w", encoding="utf-8") as handle:
        result = subprocess.run([sys.executable, "-m", "compile", "standalone", "-q"], cwd=target, stdout=handle,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"the build in {target} failed ({result.returncode}): see {log}")
    return target / "dist" / VARIANT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), default=sorted(SCENARIOS))
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="peft-delta-"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        base = clone_and_build(commit, scratch / "base", None)
        full = json.loads((base / "layers.json").read_text(encoding="utf-8"))
        full_bytes = sum(layer["bytes"] for layer in full["layers"].values())
        for name in args.only:
            what, change = SCENARIOS[name]
            changed = clone_and_build(commit, scratch / name, change)
            summary = make_delta(base, changed, scratch / f"update-{name}")
            rows.append({"change": what, "delta_bytes": summary.blob_bytes, "full_bytes": summary.full_bytes,
                         "files": summary.files_new + summary.files_changed, "deleted": summary.files_deleted,
                         "layers": list(summary.layers_changed), "measured": True})
            shutil.rmtree(scratch / name, ignore_errors=True)
        torch = full["layers"]["sidecar/torch"]["bytes"]
        rows.append({"change": "torch release (bound: its whole layer)", "delta_bytes": torch, "full_bytes": full_bytes,
                     "files": full["layers"]["sidecar/torch"]["files"], "deleted": None, "layers": ["sidecar/torch"],
                     "measured": False})
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print("| change | delta | of the folder | files sent | layers changed |")
    print("|---|---|---|---|---|")
    for row in rows:
        share = row["delta_bytes"] / row["full_bytes"]
        print(f"| {row['change']} | {row['delta_bytes'] / 2**20:.1f} MiB | {share:.1%} | {row['files']} | "
              f"{', '.join(row['layers'])}{'' if row['measured'] else ' (from the manifest)'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
