"""``python -m benchmarks selftest``: measure the gate's power and its false alarms.

It copies this checkout (tracked and untracked files, not ignored ones) into a base copy and into one
copy per injected regression, changes the backend of each as a real regression would, measures head
against base in one run (``run --also``, paired, adaptive, quick profile) and asks the gate:

- ``import-sleep``: 30 ms of ``time.sleep`` when ``backend`` is imported (source; ``startup (warm)``);
- ``resident-memory``: 4 MiB allocated and touched when the app module is imported, kept for the
  life of the server (source; ``idle PSS``);
- ``size``: a bundled data file of 5 % of the standalone's size (both copies are built; ``size on
  disk``).

Each injection is measured ``--repeats`` times and must be called ``worse`` in (nearly) every one; an
unchanged copy is measured ``--aa-repeats`` times and must (nearly) never be called ``worse`` on any
metric. The table goes to ``--out``.

Injection runs skip what cannot bear on their metric (training rounds, instruction counts) and add
rounds only until the regression is caught (one of its metrics called worse) or its metrics are
decided; the unchanged runs measure everything the gate decides on, instruction counts included, and
add rounds until every gated metric is decided or the quick profile's cap (12 rounds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from backend.variants import NUITKA_STANDALONE, SOURCE
from benchmarks.gate import ORDER, Finding, compare
from benchmarks.measure.size import disk_bytes
from benchmarks.runner import RunOptions, against_labels, run_benchmarks
from benchmarks.schema import METRICS
from benchmarks.storage import select, write_json

SLEEP_S = 0.030
RESIDENT_MIB = 4
SIZE_FRACTION = 0.05


@dataclass(frozen=True)
class Injection:
    name: str
    description: str
    metrics: tuple[str, ...]  # the gate catches the regression when it calls any of these worse
    variant: str
    apply: Callable[[Path, Path], None]  # (copy, the unchanged base copy, built when an injection builds)
    build: bool = False


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n# --- injected by benchmarks selftest ---\n" + code,
                    encoding="utf-8")


def inject_import_sleep(copy: Path, base: Path) -> None:
    _append(copy / "backend" / "__init__.py", f"import time as _selftest_time\n_selftest_time.sleep({SLEEP_S})\n")


def inject_resident_memory(copy: Path, base: Path) -> None:
    _append(copy / "backend" / "app.py",
            f"_SELFTEST_BALLAST = bytearray({RESIDENT_MIB} * 2**20)\n"
            "for _offset in range(0, len(_SELFTEST_BALLAST), 4096):\n"
            "    _SELFTEST_BALLAST[_offset] = 1  # touched: resident, anonymous, never released\n")


def inject_size(copy: Path, base: Path) -> None:
    """A data file of 5 % of the base copy's standalone build (built first: :func:`run_selftest`)."""
    built = base / "dist" / NUITKA_STANDALONE.name
    if not built.is_dir():
        raise RuntimeError(f"the size injection is {SIZE_FRACTION:.0%} of {built}, which is not built")
    size = disk_bytes(built)
    ballast = copy / "backend" / "resources" / "selftest-ballast.bin"
    with ballast.open("wb") as handle:  # random bytes: the compressed size grows too
        remaining = int(size * SIZE_FRACTION)
        while remaining > 0:
            block = os.urandom(min(remaining, 1 << 20))
            handle.write(block)
            remaining -= len(block)


INJECTIONS: dict[str, Injection] = {injection.name: injection for injection in (
    Injection("import-sleep", f"+{SLEEP_S * 1000:.0f} ms at import", ("startup_warm_s", "startup_blocked_s"),
              SOURCE.name, inject_import_sleep),
    Injection("resident-memory", f"+{RESIDENT_MIB} MiB kept resident after startup", ("idle_pss_bytes",),
              SOURCE.name, inject_resident_memory),
    Injection("size", f"+{SIZE_FRACTION:.0%} artifact size", ("size_bytes",), NUITKA_STANDALONE.name, inject_size,
              build=True),
)}


def copy_checkout(root: Path, destination: Path) -> Path:
    """Tracked and untracked files of ``root`` (what ``git status`` shows), not ignored ones."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listing):
        source = root / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)  # git_commit() reads a repository
    return destination


def build(copy: Path, variant: str, log: Callable[[str], None]) -> None:
    log(f"  building {variant} in {copy}")
    command = [sys.executable, "-m", "compile", *NUITKA_STANDALONE.build_args, "--project", str(copy)]
    completed = subprocess.run(command, cwd=copy, capture_output=True, text=True)
    if completed.returncode != 0:
        output = completed.stdout[-3000:] + completed.stderr[-3000:]
        raise RuntimeError(f"building {variant} in {copy} failed:\n{output}")


def caught_or_decided(metrics: tuple[str, ...]) -> Callable[[dict[str, Any]], list[str]]:
    """Rounds are added until one of ``metrics`` is called worse (the regression is caught), or all are decided."""
    undecided_ones = against_labels(["base"], metrics)

    def decide(results: dict[str, Any]) -> list[str]:
        findings = compare(select(results, "base"), select(results, ""), metrics=metrics)
        return [] if any(f.verdict == "worse" for f in findings) else undecided_ones(results)
    return decide


def measure(head: Path, base: Path, variant: str, options: RunOptions, log: Callable[[str], None],
            metrics: tuple[str, ...] | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """One run of head against base; rounds are added until every gated metric is decided (with
    ``metrics``: until one of them is caught worse, or all are decided)."""
    decider = caught_or_decided(metrics) if metrics else against_labels(["base"])
    results = run_benchmarks({None: head, "base": base}, options, (variant,), decider=decider, log=lambda line: None)
    findings = compare(select(results, "base"), select(results, ""))
    adaptive = results["adaptive"]
    worse = [f"{f.metric} {f.change.text() if f.change else ''}" for f in findings if f.verdict == "worse"]
    log(f"    {adaptive['rounds']} rounds ({adaptive['stop_reason']}); worse: {', '.join(worse) or 'none'}"
        + (f"; undecided: {', '.join(adaptive['undecided'])}" if adaptive["undecided"] else ""))
    return results, findings


@dataclass
class Tally:
    """The table rows so far, and the acceptance failures."""

    rows: list[str]
    failures: list[str]


def run_injection(injection: Injection, head: Path, base: Path, repeats: int, options: RunOptions,
                  keep: Path | None, tally: Tally, log: Callable[[str], None]) -> None:
    """Inject, build if needed, measure ``repeats`` times; caught in 9 of 10 runs or it fails."""
    injection.apply(head, base)
    if injection.build:
        build(head, injection.variant, log)
    verdicts = []
    for repeat in range(repeats):
        log(f"  {injection.name} {repeat + 1}/{repeats}")
        results, findings = measure(head, base, injection.variant, options, log, injection.metrics)
        if keep:
            write_json(keep / f"{injection.name}-{repeat + 1}.json", results)
        found = [f for f in findings if f.metric in injection.metrics and f.variant == injection.variant]
        verdicts.append(min((f.verdict for f in found), key=ORDER.__getitem__) if found else "not measured")
    worse = verdicts.count("worse")
    labels = " or ".join(METRICS[metric].label for metric in injection.metrics)
    tally.rows.append(f"| {injection.description} | {injection.variant} | {labels} | {repeats} | {worse} | "
                      f"{_tally(verdicts)} |")
    if worse < repeats - repeats // 10:
        tally.failures.append(f"{injection.name}: worse in {worse} of {repeats}")


def run_unchanged(head: Path, base: Path, repeats: int, options: RunOptions, keep: Path | None, tally: Tally,
                  log: Callable[[str], None]) -> None:
    """Measure an unchanged copy ``repeats`` times; a false alarm on any metric in more than 1 of 20 fails."""
    alarms = []
    for repeat in range(repeats):
        log(f"  no change {repeat + 1}/{repeats}")
        results, findings = measure(head, base, SOURCE.name, options, log)
        if keep:
            write_json(keep / f"unchanged-{repeat + 1}.json", results)
        alarms.append(", ".join(f"{f.variant} {f.metric}" for f in findings if f.verdict == "worse"))
    false_alarms = sum(1 for alarm in alarms if alarm)
    detail = "; ".join(alarm for alarm in alarms if alarm) or "none"
    tally.rows.append(f"| no change (A/A) | source | any gated metric | {repeats} | {false_alarms} | "
                      f"false alarms: {detail} |")
    if false_alarms > max(1, repeats // 20):
        tally.failures.append(f"A/A: worse in {false_alarms} of {repeats}")


def run_selftest(root: Path, chosen: tuple[str, ...], repeats: int, aa_repeats: int, out: Path,
                 keep: Path | None, log: Callable[[str], None] = print) -> int:
    started = time.monotonic()
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="peft-selftest-", dir=keep))
    tally = Tally([], [])
    try:
        # Every copy first: the checkout may change while the measurements run.
        base = copy_checkout(root, scratch / "base")
        heads = {name: copy_checkout(root, scratch / name) for name in chosen}
        unchanged = copy_checkout(root, scratch / "unchanged")
        quick = RunOptions.quick_profile()
        if repeats and any(INJECTIONS[name].build for name in chosen):
            build(base, NUITKA_STANDALONE.name, log)
        for name in chosen if repeats else ():
            run_injection(INJECTIONS[name], heads[name], base, repeats,
                          replace(quick, train_rounds=0, instructions="none"), scratch if keep else None, tally, log)
        if aa_repeats:
            run_unchanged(unchanged, base, aa_repeats, quick, scratch if keep else None, tally, log)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    table = "\n".join(["| injection | variant | metric | repeats | reported worse | verdicts |",
                       "|---|---|---|---|---|---|", *tally.rows])
    command = f"python -m benchmarks selftest --repeats {repeats} --aa-repeats {aa_repeats}"
    runs = ', '.join(chosen) if repeats else 'no injections'
    text = (f"## Gate self-test\n\n{table}\n\n`{command}` ({runs}), quick profile, "
            f"{time.monotonic() - started:.0f}s.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    log(text)
    if tally.failures:
        log("selftest: FAILED (" + "; ".join(tally.failures) + ")")
        return 1
    log("selftest: passed")
    return 0


def _tally(verdicts: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
    return ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items(), key=lambda item: -item[1]))
