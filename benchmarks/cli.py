"""``python -m benchmarks run | report | compare | baseline``.

Exit codes: 0 fine, 1 the gate found a confirmed regression (or a missing variant), 2 usage error or
unreadable input, 3 nothing could be measured.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from backend.variants import NAMES
from benchmarks.gate import compare, gate_failed, render_findings
from benchmarks.measure.launch import LaunchError
from benchmarks.report import render_charts, render_html, render_markdown, update_readme
from benchmarks.runner import RunOptions, run_benchmarks
from benchmarks.schema import SchemaError
from benchmarks.storage import append_history, baseline_path, load_history, load_results, write_json

DEFAULT_RESULTS = Path("reports/results.json")
DEFAULT_HISTORY = Path("reports/history.jsonl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="measure every built variant, interleaved")
    run.add_argument("--quick", action="store_true", help="CI profile: 5 rounds, 1 training job, fast compression")
    run.add_argument("--rounds", type=int, help="measured rounds (default 7, quick 5)")
    run.add_argument("--no-cold", action="store_true", help="skip cold (page cache evicted) launches")
    run.add_argument("--variants", help=f"comma-separated subset of: {', '.join(NAMES)}")
    run.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    run.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="JSON-lines history to append to")
    run.add_argument("--also", action="append", default=[], metavar="LABEL=DIST",
                     help="also measure another checkout's builds, interleaved, as LABEL/<variant>")
    report = commands.add_parser("report", help="markdown, PNG charts and an HTML page from a result file")
    report.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    report.add_argument("--out", type=Path, default=Path("reports"))
    report.add_argument("--baseline", help="include the gate's verdicts against this baseline (FILE or FILE#LABEL)")
    report.add_argument("--history", type=Path, default=DEFAULT_HISTORY)
    report.add_argument("--readme", type=Path, help="also rewrite the headline table in this README")
    compare_parser = commands.add_parser("compare", help="the regression gate: exit 1 on a confirmed regression")
    compare_parser.add_argument("baseline", help="result file; FILE#LABEL selects variants measured as LABEL/...")
    compare_parser.add_argument("current", help="result file (same syntax)")
    baseline = commands.add_parser("baseline", help="make a result file the committed baseline (deliberately)")
    baseline.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    baseline.add_argument("--update", action="store_true", help="required: replace the committed baseline")
    return parser


def command_run(args: argparse.Namespace) -> int:
    options = RunOptions.quick_profile() if args.quick else RunOptions()
    if args.rounds:
        options = RunOptions(**{**options.__dict__, "rounds": args.rounds})
    if args.no_cold:
        options = RunOptions(**{**options.__dict__, "cold": False})
    names = tuple(NAMES)
    if args.variants:
        names = tuple(name.strip() for name in args.variants.split(",") if name.strip())
        unknown = [name for name in names if name not in NAMES]
        if unknown:
            print(f"error: unknown variant(s) {', '.join(unknown)}; use: {', '.join(NAMES)}", file=sys.stderr)
            return 2
    print(f"python -m benchmarks run: {options.rounds} rounds, {options.warmup} warm-up"
          f"{', quick' if options.quick else ''}")
    also = {}
    for item in args.also:
        label, _, dist = item.partition("=")
        if not label or not dist or "/" in label:
            print(f"error: --also takes LABEL=DIST_DIR (LABEL without '/'), got {item!r}", file=sys.stderr)
            return 2
        also[label] = Path(dist).resolve()
    results = run_benchmarks(Path.cwd(), options, names, also=also)
    write_json(args.out, results)
    append_history(args.history, results)
    print(f"results: {args.out} ({results['duration_s']:.0f}s); history: {args.history}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    findings = compare(load_results(args.baseline), results) if args.baseline else None
    history = load_history(args.history)
    charts = render_charts(results, history or [results], args.out / "charts")
    markdown = render_markdown(results, findings)
    (args.out / "summary.md").write_text(markdown, encoding="utf-8")
    (args.out / "report.html").write_text(render_html(results, findings, charts), encoding="utf-8")
    if args.readme:
        update_readme(args.readme, {**results, "source_file": str(args.results)})
        print(f"updated the benchmark table in {args.readme}")
    print(markdown)
    print(f"wrote {args.out / 'summary.md'}, {args.out / 'report.html'} and {len(charts)} charts in "
          f"{args.out / 'charts'}")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    findings = compare(load_results(args.baseline), load_results(args.current))
    print(render_findings(findings))
    if gate_failed(findings):
        print("gate: FAILED (a confirmed regression or a missing variant; see the table)")
        return 1
    inconclusive = sum(1 for finding in findings if finding.verdict == "inconclusive")
    print("gate: passed" + (f" ({inconclusive} inconclusive: rerun to decide)" if inconclusive else ""))
    return 0


def command_baseline(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    target = baseline_path(f"{results['machine']['platform']}-{results['machine']['machine']}")
    if not args.update:
        print(f"would replace {target} with {args.results}; pass --update to do it (then commit the file)")
        return 2
    shutil.copyfile(args.results, target)
    print(f"baseline updated: {target} (commit it with a message saying why)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    handlers = {"run": command_run, "report": command_report, "compare": command_compare,
                "baseline": command_baseline}
    if args.command not in handlers:
        parser.print_help()
        return 2
    try:
        return handlers[args.command](args)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
