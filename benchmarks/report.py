"""Reports from a result file: a markdown summary (GitHub job summary / PR comment), PNG charts, and one
self-contained HTML page with the same tables and the charts inlined.

Variants are set beside the PyInstaller build of the same packaging: folders with folders (Nuitka
standalone ÷ PyInstaller onedir), single files with single files (Nuitka onefile ÷ PyInstaller
onefile). Ratios are ratios of medians with a 95 % bootstrap interval; there are no p-values (see
:mod:`benchmarks.stats`).
"""

from __future__ import annotations

import base64
import html
import statistics
import time
from pathlib import Path
from typing import Any

from backend.variants import ALL_NAMES, NAMES, PYINSTALLER_ONEDIR, PYINSTALLER_ONEFILE, flavoured, variant_named
from benchmarks.gate import Finding, detectable_text, render_findings, same_run, threshold_text, undecided
from benchmarks.schema import METRICS, samples, scalar
from benchmarks.stats import ratio_of_medians

MIB = 1024**2


def counterpart(name: str) -> str | None:
    """The PyInstaller build of the same packaging as ``name`` (None for source and for itself)."""
    kind = name.rsplit("/", 1)[-1]
    if kind not in ALL_NAMES:
        return None
    variant = variant_named(kind)
    if not variant.frozen:
        return None
    reference = flavoured(PYINSTALLER_ONEFILE if variant.onefile else PYINSTALLER_ONEDIR, variant.torch).name
    return None if reference == kind else reference


def _order(results: dict[str, Any]) -> list[str]:
    return [name for name in ALL_NAMES if name in results["variants"]] + sorted(
        name for name in results["variants"] if name not in ALL_NAMES)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "instructions":
        return f"{value / 1e6:,.0f} M"
    return f"{value / MIB:.1f} MiB"


def ratio_cell(results: dict[str, Any], name: str, metric: str, reference: str | None = None) -> str:
    """``name`` ÷ ``reference`` (default: its PyInstaller counterpart), with an interval for samples."""
    variants = results["variants"]
    reference = reference or counterpart(name)
    if reference is None or reference not in variants or name not in variants:
        return "—"
    if METRICS[metric].kind == "scalar":
        value, base = scalar(variants[name], metric), scalar(variants[reference], metric)
        return f"{value / base:.2f}× {reference.split('-')[-1]}" if value and base else "—"
    a, b = samples(variants[name], metric), samples(variants[reference], metric)
    if not a or not b:
        return "—"
    return ratio_of_medians(a, b).text() + f" {reference.split('-')[-1]}"


def headline_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in _order(results):
        variant = results["variants"][name]
        build = variant.get("build") or {}
        rows.append([
            name,
            _fmt(_median(samples(variant, "startup_warm_s")), "s"), ratio_cell(results, name, "startup_warm_s"),
            _fmt(_median(samples(variant, "idle_pss_bytes")), "bytes"), ratio_cell(results, name, "idle_pss_bytes"),
            _fmt(scalar(variant, "size_bytes"), "bytes"), ratio_cell(results, name, "size_bytes"),
            _fmt(scalar(variant, "startup_instructions"), "instructions"),
            f"{build['wall_seconds']:.0f} s" if build.get("wall_seconds") else "—",
        ])
    return rows


HEADLINE_HEADER = ["variant", "startup (warm, median)", "÷ PyInstaller, same packaging", "idle PSS (tree, median)",
                   "÷ PyInstaller, same packaging", "size", "÷ PyInstaller, same packaging",
                   "startup instructions", "build"]


def detail_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for metric in METRICS.values():
        if metric.kind != "sample":
            continue
        for name in _order(results):
            values = samples(results["variants"][name], metric.name)
            if not values:
                continue
            rows.append([metric.label, name, _fmt(_median(values), metric.unit), _fmt(min(values), metric.unit),
                         _fmt(max(values), metric.unit), str(len(values)), ratio_cell(results, name, metric.name)])
    return rows


DETAIL_HEADER = ["metric", "variant", "median", "min", "max", "n", "÷ PyInstaller, same packaging [95% CI]"]


def calibrated_startup(results: dict[str, Any], name: str) -> float | None:
    """Median warm startup ÷ median calibration time of the same run: comparable across runs."""
    calibration = (results.get("calibration") or {}).get("samples") or []
    warm = samples(results["variants"].get(name, {}), "startup_warm_s")
    return statistics.median(warm) / statistics.median(calibration) if warm and calibration else None


def calibrated_section(baseline: dict[str, Any], results: dict[str, Any]) -> str:
    """Wall-clock against a stored baseline: each run's warm startup ÷ its calibration process, then and
    now. Reported, never gated: across runs the machine's speed moves more than a regression would."""
    rows = []
    for name in _order(results):
        now, then = calibrated_startup(results, name), calibrated_startup(baseline, name)
        if now is not None and then is not None:
            rows.append([name, f"{then:.2f}", f"{now:.2f}", f"{now / then:.2f}×"])
    if not rows:
        return ""
    return ("### Wall-clock startup, calibrated (reported, not gated)\n\n"
            + _table(["variant", "baseline ÷ calibration", "now ÷ calibration", "change"], rows) + "\n")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(results: dict[str, Any], findings: list[Finding] | None = None,
                    baseline: dict[str, Any] | None = None) -> str:
    parts = ["## peft-engine benchmarks\n\n"]
    if findings is not None:
        shown = [f for f in findings if f.verdict in ("worse", "missing", "inconclusive")]
        parts.append("### Regression gate\n\n")
        parts.append(render_findings(shown, same_run(baseline, results) if baseline else None)
                     if shown else "No regression, nothing undecided.\n")
        pending = undecided(findings)
        if pending:
            parts.append(f"\nUndecided after {results.get('adaptive', {}).get('rounds', '?')} rounds: "
                         + ", ".join(f"{f.variant} {METRICS[f.metric].label}" for f in pending)
                         + " (the 'detectable' column: the smallest increase this run could have flagged).\n")
        parts.append("\n")
        if baseline is not None and not same_run(baseline, results):
            parts.append(calibrated_section(baseline, results))
    parts.append("### Headline\n\n")
    parts.append(_table(HEADLINE_HEADER, headline_rows(results)))
    missing = results.get("missing") or {}
    if missing:
        parts.append("\nNot measured (not built): " + ", ".join(f"`{n}` (`{c}`)" for n, c in missing.items()) + "\n")
    errors = {name: v["errors"] for name, v in results["variants"].items() if v.get("errors")}
    for name, problems in errors.items():
        parts.append(f"\n**{name} errors:** " + "; ".join(problems[:5]) + "\n")
    parts.append("\n### All metrics\n\n")
    parts.append(_table(DETAIL_HEADER, detail_rows(results)))
    machine, versions = results["machine"], results["versions"]
    adaptive = results.get("adaptive") or {}
    rounds = adaptive.get("rounds", results["options"]["rounds"])
    parts.append(
        f"\n{machine['platform']}/{machine['machine']}, {machine['cpu_count']} CPUs, "
        f"{machine['memory_bytes'] / 1024**3:.0f} GiB; "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + f"; commit `{str(results.get('commit'))[:10]}`; {rounds} rounds"
        + (f" ({adaptive['stop_reason']})" if adaptive.get("stop_reason") else "")
        + (" (quick)" if results["options"].get("quick") else "") + ".\n"
    )
    return "".join(parts)


README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def readme_section(results: dict[str, Any]) -> str:
    """The headline table as the README shows it, generated from a result file."""
    machine = results["machine"]
    rounds = (results.get("adaptive") or {}).get("rounds", results["options"]["rounds"])
    return (_table(HEADLINE_HEADER, headline_rows(results))
            + f"\nFrom `{results.get('source_file', 'a result file')}`: {machine['platform']}/{machine['machine']}, "
            f"{machine['cpu_count']} CPUs, commit `{str(results.get('commit'))[:10]}`, {rounds} rounds, all variants "
            "interleaved. Sizes compare like with like: folders with PyInstaller onedir, single files with "
            "PyInstaller onefile. Regenerate with `python -m benchmarks report --readme README.md RESULTS`.\n")


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_section(results) + text[end:], encoding="utf-8")


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0], ordered[0]
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return q1, median, q3


def _bars(axis: Any, names: list[str], values: list[float], errors: list[tuple[float, float]] | None,
          unit: str, colors: list[str]) -> None:
    positions = range(len(names))
    yerr = [[low for low, _ in errors], [high for _, high in errors]] if errors else None
    bars = axis.bar(positions, values, color=colors, yerr=yerr, capsize=4, ecolor="#333")
    axis.set_xticks(list(positions), names, rotation=20, ha="right")
    axis.bar_label(bars, labels=[f"{value:,.1f} {unit}" for value in values], padding=3, fontsize=8)
    axis.margins(y=0.15)


def render_charts(results: dict[str, Any], history: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Startup (every sample), idle memory (median, quartiles as error bars), size (deterministic: no
    error bars), and the trend over the runs of the history file, each point with its quartiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = _order(results)
    colors = ["#c44" if n.startswith("pyinstaller") else "#888" if n == "source" else "#48c" for n in names]
    written = []

    figure, axis = plt.subplots(figsize=(9, 4.5))
    present = [(n, [v * 1000 for v in samples(results["variants"][n], "startup_warm_s")]) for n in names]
    present = [(n, d) for n, d in present if d]
    if present:
        axis.boxplot([d for _, d in present], tick_labels=[n for n, _ in present])
        for index, (_, values) in enumerate(present, start=1):
            axis.scatter([index] * len(values), values, s=10, alpha=0.6)
            axis.annotate(f"{statistics.median(values):,.0f} ms", (index, statistics.median(values)),
                          textcoords="offset points", xytext=(14, 0), fontsize=8, va="center")
        axis.set_yscale("log")
    axis.set_ylabel("spawn → first 200 /health (ms, log)")
    axis.set_title("Startup, warm (every sample; box: quartiles)")
    axis.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    written.append(_save(figure, folder / "startup.png"))

    figure, axis = plt.subplots(figsize=(9, 4.5))
    medians, errors = [], []
    for name in names:
        values = [v / MIB for v in samples(results["variants"][name], "idle_pss_bytes")] or [0.0]
        q1, median, q3 = _quartiles(values)
        medians.append(median)
        errors.append((median - q1, q3 - median))
    _bars(axis, names, medians, errors, "MiB", colors)
    axis.set_ylabel("MiB")
    axis.set_title("Idle PSS of the process tree (median; error bars: quartiles)")
    figure.tight_layout()
    written.append(_save(figure, folder / "memory.png"))

    figure, axis = plt.subplots(figsize=(9, 4.5))
    sizes = {n: scalar(results["variants"][n], "size_bytes") for n in names}
    sized = [n for n, size in sizes.items() if size]
    _bars(axis, sized, [(sizes[n] or 0) / MIB for n in sized], None, "MiB", [colors[names.index(n)] for n in sized])
    axis.set_ylabel("MiB")
    axis.set_title("Size on disk (deterministic: no error bars)")
    figure.tight_layout()
    written.append(_save(figure, folder / "size.png"))

    written.append(render_trend(history, folder / "trend.png", plt))
    return written


def render_trend(history: list[dict[str, Any]], path: Path, plt: Any) -> Path:
    """Idle PSS and calibrated warm startup of each variant over the runs in the history file."""
    figure, (memory, startup) = plt.subplots(1, 2, figsize=(12, 4.5))
    kinds = [name for name in NAMES if any(name in run.get("variants", {}) for run in history)]
    for name in kinds:
        points, startups = [], []
        for index, run in enumerate(history):
            variant = run.get("variants", {}).get(name)
            if not variant:
                continue
            pss = [v / MIB for v in samples(variant, "idle_pss_bytes")]
            if pss:
                q1, median, q3 = _quartiles(pss)
                points.append((index, median, median - q1, q3 - median))
            calibrated = calibrated_startup(run, name)
            if calibrated is not None:
                startups.append((index, calibrated))
        if points:
            memory.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[[p[2] for p in points],
                            [p[3] for p in points]], marker="o", capsize=3, label=name)
        if startups:
            startup.plot([p[0] for p in startups], [p[1] for p in startups], marker="o", label=name)
    labels = [time.strftime("%m-%d %H:%M", time.gmtime(run.get("created_at", 0))) + "\n"
              + str(run.get("commit") or "?")[:7] for run in history]
    for axis in (memory, startup):
        axis.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    memory.set_ylabel("MiB")
    memory.set_title("Idle PSS (median, quartiles)")
    startup.set_ylabel("warm startup ÷ calibration process")
    startup.set_title("Startup, calibrated (comparable across runs)")
    if not history:
        memory.text(0.5, 0.5, "no history yet: every run appends to it", ha="center", transform=memory.transAxes)
    figure.suptitle(f"Trend over {len(history)} recorded runs")
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(results: dict[str, Any], findings: list[Finding] | None, charts: list[Path]) -> str:
    sections = ["<h1>peft-engine benchmarks</h1>"]
    if findings is not None:
        rows = [[f.verdict, f.variant, METRICS[f.metric].label if f.metric in METRICS else f.metric,
                 f.change.text() if f.change else f.note, threshold_text(f), detectable_text(f)] for f in findings]
        sections.append("<h2>Regression gate</h2>" + _html_table(
            ["verdict", "variant", "metric", "change [95% CI]", "threshold", "detectable"], rows))
    sections.append("<h2>Headline</h2>" + _html_table(HEADLINE_HEADER, headline_rows(results)))
    for chart in charts:
        encoded = base64.b64encode(chart.read_bytes()).decode()
        sections.append(f'<figure><img alt="{chart.stem}" src="data:image/png;base64,{encoded}"></figure>')
    sections.append("<h2>All metrics</h2>" + _html_table(DETAIL_HEADER, detail_rows(results)))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>peft-engine benchmarks</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
