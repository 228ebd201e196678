"""Reproducible builds, checked: build the same commit twice, from two clones in different folders at
different times, and compare every file of the two artifacts (``SHA256SUMS``; ``build.json`` holds times
by design and is not compared).

    python scripts/reproducible.py                              # nuitka-standalone
    python scripts/reproducible.py nuitka-onefile pyinstaller-onedir
    python scripts/reproducible.py --keep /tmp/repro            # keep both clones to inspect

Exit codes: 0 every artifact identical, 1 a file differs (each is listed, with its two hashes),
2 usage or a build failed. Commit first: the clones hold what HEAD holds, not the working tree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.variants import BUILT_NAMES, variant_named  # noqa: E402

CHECKSUMS = "SHA256SUMS"


def checksums(folder: Path) -> dict[str, str]:
    entries = {}
    for line in (folder / CHECKSUMS).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def clone_and_build(commit: str, target: Path, variant: str, log: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", commit], check=True)
    spec = variant_named(variant)
    command = [sys.executable, "-m", "compile", *spec.build_args, "-q"]
    with log.open("w", encoding="utf-8") as handle:
        result = subprocess.run(command, cwd=target, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} in {target} exited {result.returncode}: see {log}")
    return target / "dist" / variant


def compare(first: Path, second: Path) -> list[str]:
    one, two = checksums(first), checksums(second)
    differences = [f"only in the first: {name}" for name in sorted(set(one) - set(two))]
    differences += [f"only in the second: {name}" for name in sorted(set(two) - set(one))]
    differences += [f"differs: {name} ({one[name][:12]} / {two[name][:12]})"
                    for name in sorted(set(one) & set(two)) if one[name] != two[name]]
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", default=["nuitka-standalone"], help=", ".join(BUILT_NAMES))
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between the two builds (times differ)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.variants if name not in BUILT_NAMES]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: use {', '.join(BUILT_NAMES)}")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if dirty:
        print("note: the working tree has uncommitted changes; the clones build HEAD without them")
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="peft-repro-"))
    scratch.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        for variant in args.variants:
            started = time.perf_counter()
            # different folder names and depths: an absolute path recorded anywhere shows up as a difference
            first = clone_and_build(commit, scratch / f"a-{variant}", variant, scratch / f"a-{variant}.log")
            time.sleep(args.pause)
            second = clone_and_build(commit, scratch / "deeper" / f"b-{variant}", variant,
                                     scratch / f"b-{variant}.log")
            differences = compare(first, second)
            files = len(checksums(first))
            took = time.perf_counter() - started
            if differences:
                failed = True
                print(f"{variant}: NOT reproducible: {len(differences)} of {files} files differ ({took:.0f}s)")
                for line in differences[:40]:
                    print(f"  {line}")
                if len(differences) > 40:
                    print(f"  ... and {len(differences) - 40} more")
            else:
                print(f"{variant}: reproducible: {files} files identical in two builds of {commit[:10]} ({took:.0f}s)")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
