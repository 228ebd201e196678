"""``python -m benchmarks run | report | compare | baseline | selftest``.

Exit codes: 0 fine, 1 the gate found a confirmed regression (or a missing variant), 2 usage error,
unreadable input or missing extras, 3 nothing could be measured.

Examples:
  python -m benchmarks run --quick
  python -m benchmarks run --quick --also base=../base      # a pull request: head and base, one run
  python -m benchmarks compare "reports/results.json#base" reports/results.json
  python -m benchmarks run --quick --baseline benchmarks/baseline/linux-x86_64.json
  python -m benchmarks report --baseline benchmarks/baseline/linux-x86_64.json
  python -m benchmarks selftest --repeats 10 --aa-repeats 20
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from backend import __version__
from backend.variants import ALL_NAMES, NAMES

DEFAULT_RESULTS = Path("reports/results.json")
DEFAULT_HISTORY = Path("reports/history.jsonl")
EXTRAS = ("numpy", "scipy", "matplotlib")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"peft-engine benchmarks {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="measure every built variant, interleaved")
    run.add_argument("--quick", action="store_true",
                     help="CI profile: 5 to 12 rounds, 1 training job, fast compression")
    run.add_argument("--rounds", type=int, help="minimum measured rounds (default 7, quick 5)")
    run.add_argument("--max-rounds", type=int, help="adaptive runs stop here (default 20, quick 12)")
    run.add_argument("--time-cap", type=float, metavar="SECONDS", help="adaptive rounds stop after this long")
    run.add_argument("--fixed", action="store_true", help="exactly --rounds rounds, even when a metric is undecided")
    run.add_argument("--no-cold", action="store_true", help="skip cold (page cache evicted) launches")
    run.add_argument("--instructions", choices=("auto", "all", "none"),
                     help="count startup instructions under callgrind (auto: source and folder builds)")
    run.add_argument("--variants", help=f"comma-separated subset of: {', '.join(ALL_NAMES)} (default: "
                                        f"{', '.join(NAMES)})")
    run.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    run.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="JSON-lines history to append to")
    run.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                     help="also measure another checkout (its source and dist/) or a dist folder, interleaved, "
                          "as LABEL/<variant>; rounds are added until head against it is decided")
    run.add_argument("--baseline", metavar="FILE", help="add rounds until every gated metric is decided against it")
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
    baseline.add_argument("--variants", help="keep only these, comma-separated: the variants CI measures (the "
                                             "gate fails on a baseline variant a run did not measure)")
    selftest = commands.add_parser("selftest", help="inject known regressions into copies of this checkout "
                                                    "and count how often the gate catches them")
    selftest.add_argument("--repeats", type=int, default=10,
                          help="measured runs per injection (default 10; 0: only the runs without a change)")
    selftest.add_argument("--aa-repeats", type=int, default=20, help="runs without any change (default 20)")
    selftest.add_argument("--injections", help="comma-separated subset of: import-sleep, resident-memory, size")
    selftest.add_argument("--out", type=Path, default=Path("reports/selftest.md"))
    selftest.add_argument("--keep", type=Path, help="keep the copies and every result file in this folder")
    return parser


def missing_extras() -> list[str]:
    return [name for name in EXTRAS if importlib.util.find_spec(name) is None]


def command_run(args: argparse.Namespace) -> int:
    from benchmarks.measure.launch import LaunchError
    from benchmarks.runner import RunOptions, against_baseline, against_labels, run_benchmarks
    from benchmarks.storage import append_history, load_results, write_json
    from benchmarks.variants import checkout_or_dist

    options = RunOptions.quick_profile() if args.quick else RunOptions()
    changes = {"rounds": args.rounds, "max_rounds": args.max_rounds, "time_cap_s": args.time_cap,
               "instructions": args.instructions, "cold": False if args.no_cold else None}
    options = RunOptions(**{**options.__dict__, **{k: v for k, v in changes.items() if v is not None}})
    names = tuple(NAMES)
    if args.variants:
        names = tuple(name.strip() for name in args.variants.split(",") if name.strip())
        unknown = [name for name in names if name not in ALL_NAMES]
        if unknown:
            print(f"error: unknown variant(s) {', '.join(unknown)}; use: {', '.join(ALL_NAMES)}", file=sys.stderr)
            return 2
    checkouts: dict[str | None, Path] = {None: Path.cwd()}
    dists: dict[str | None, Path] = {}
    for item in args.also:
        label, _, path = item.partition("=")
        if not label or not path or "/" in label:
            print(f"error: --also takes LABEL=PATH (LABEL without '/'), got {item!r}", file=sys.stderr)
            return 2
        checkouts[label], dists[label] = checkout_or_dist(Path(path))
    decider = None
    if not args.fixed:
        if args.also:
            decider = against_labels([label for label in checkouts if label])
        elif args.baseline:
            decider = against_baseline(load_results(args.baseline))
    adaptive = f" (up to {options.max_rounds}, adaptive)" if decider else ""
    print(f"python -m benchmarks run: {options.rounds} rounds{adaptive}, {options.warmup} warm-up"
          f"{', quick' if options.quick else ''}")
    try:
        results = run_benchmarks(checkouts, options, names, dists=dists, decider=decider)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    write_json(args.out, results)
    append_history(args.history, results)
    adaptive = results["adaptive"]
    print(f"results: {args.out} ({results['duration_s']:.0f}s, {adaptive['rounds']} rounds: {adaptive['stop_reason']})"
          f"; history: {args.history}")
    if adaptive["undecided"]:
        print(f"undecided: {', '.join(adaptive['undecided'])}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from benchmarks.gate import compare
    from benchmarks.report import render_charts, render_html, render_markdown, update_readme
    from benchmarks.storage import load_history, load_results

    results = load_results(args.results)
    baseline = load_results(args.baseline) if args.baseline else None
    findings = compare(baseline, results) if baseline else None
    history = load_history(args.history)
    charts = render_charts(results, history, args.out / "charts")
    markdown = render_markdown(results, findings, baseline)
    (args.out / "summary.md").write_text(markdown, encoding="utf-8")
    (args.out / "report.html").write_text(render_html(results, findings, charts), encoding="utf-8")
    if args.readme:
        update_readme(args.readme, {**load_results(args.results), "source_file": str(args.results)})
        print(f"updated the benchmark table in {args.readme}")
    print(markdown)
    print(f"wrote {args.out / 'summary.md'}, {args.out / 'report.html'} and {len(charts)} charts in "
          f"{args.out / 'charts'}")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from benchmarks.gate import compare, gate_failed, render_findings, same_run, undecided
    from benchmarks.storage import load_results

    old, new = load_results(args.baseline), load_results(args.current)
    findings = compare(old, new)
    print(render_findings(findings, same_run(old, new)))
    if gate_failed(findings):
        print("gate: FAILED (a confirmed regression or a missing variant; see the table)")
        return 1
    pending = undecided(findings)
    print("gate: passed" + (f" ({len(pending)} undecided: the run could not tell; the 'detectable' column says how "
                            "large a change it could have seen)" if pending else ""))
    return 0


def command_baseline(args: argparse.Namespace) -> int:
    from benchmarks.storage import baseline_path, load_results, write_json

    results = load_results(args.results)
    target = baseline_path(f"{results['machine']['platform']}-{results['machine']['machine']}")
    kept = ", ".join(results["variants"])
    if args.variants:
        names = [name.strip() for name in args.variants.split(",") if name.strip()]
        absent = [name for name in names if name not in results["variants"]]
        if absent or not names:
            print(f"error: {args.results} has no variant {', '.join(absent) or '(none named)'}; it measured "
                  f"{kept}", file=sys.stderr)
            return 2
        results = {**results, "variants": {name: results["variants"][name] for name in names}}
        kept = ", ".join(names)
    if not args.update:
        print(f"would replace {target} with {args.results} ({kept}); pass --update to do it (then commit the file)")
        return 2
    write_json(target, results)
    print(f"baseline updated: {target} ({kept}; commit it with a message saying why)")
    return 0


def command_selftest(args: argparse.Namespace) -> int:
    from benchmarks.selftest import INJECTIONS, run_selftest

    chosen = tuple(INJECTIONS) if not args.injections else tuple(
        name.strip() for name in args.injections.split(",") if name.strip())
    unknown = [name for name in chosen if name not in INJECTIONS]
    if unknown:
        print(f"error: unknown injection(s) {', '.join(unknown)}; use: {', '.join(INJECTIONS)}", file=sys.stderr)
        return 2
    return run_selftest(Path.cwd(), chosen, args.repeats, args.aa_repeats, args.out, args.keep)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    handlers = {"run": command_run, "report": command_report, "compare": command_compare,
                "baseline": command_baseline, "selftest": command_selftest}
    if args.command not in handlers:
        parser.print_help()
        return 2
    absent = missing_extras()
    if absent:
        print(f"error: the benchmarks need {', '.join(absent)}: pip install -e '.[bench]' (or '.[dev]')",
              file=sys.stderr)
        return 2
    from benchmarks.schema import SchemaError

    try:
        return handlers[args.command](args)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
