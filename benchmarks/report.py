"""Reports from a result file: a markdown summary (GitHub job summary / PR comment), PNG charts, and one
self-contained HTML page with the same tables and the charts inlined."""

from __future__ import annotations

import base64
import html
import statistics
from pathlib import Path
from typing import Any

from backend.variants import NAMES
from benchmarks.gate import Finding, render_findings
from benchmarks.schema import METRICS, samples, scalar
from benchmarks.stats import rank_test, ratio_of_medians
from benchmarks.variants import REFERENCE as BASELINE

MIB = 1024**2


def _order(results: dict[str, Any]) -> list[str]:
    return [name for name in NAMES if name in results["variants"]] + sorted(
        name for name in results["variants"] if name not in NAMES)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value / MIB:.1f} MiB"


def ratio_cell(results: dict[str, Any], name: str, metric: str) -> str:
    variants = results["variants"]
    if BASELINE not in variants or name == BASELINE:
        return "1.00×" if name == BASELINE else "—"
    if METRICS[metric].kind == "scalar":
        value, base = scalar(variants[name], metric), scalar(variants[BASELINE], metric)
        return f"{value / base:.2f}×" if value and base else "—"
    a, b = samples(variants[name], metric), samples(variants[BASELINE], metric)
    if not a or not b:
        return "—"
    ratio = ratio_of_medians(a, b)
    p_value = rank_test(a, b)
    return ratio.text() + (f", p={p_value:.3f}" if p_value is not None else "")


def headline_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in _order(results):
        variant = results["variants"][name]
        warm = _median(samples(variant, "startup_warm_s"))
        pss = _median(samples(variant, "idle_pss_bytes"))
        build = variant.get("build") or {}
        rows.append([
            name,
            _fmt(warm, "s"), ratio_cell(results, name, "startup_warm_s"),
            _fmt(pss, "bytes"), ratio_cell(results, name, "idle_pss_bytes"),
            _fmt(variant.get("size_bytes"), "bytes") if variant.get("size_bytes") else "—",
            ratio_cell(results, name, "size_bytes") if variant.get("size_bytes") else "—",
            f"{build['wall_seconds']:.0f} s" if build.get("wall_seconds") else "—",
        ])
    return rows


HEADLINE_HEADER = ["variant", "startup (warm, median)", f"× {BASELINE}", "idle PSS (tree, median)",
                   f"× {BASELINE}", "size", f"× {BASELINE}", "build"]


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


DETAIL_HEADER = ["metric", "variant", "median", "min", "max", "n", f"ratio to {BASELINE} [95% CI]"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(results: dict[str, Any], findings: list[Finding] | None = None) -> str:
    parts = ["## peft-engine benchmarks\n\n"]
    if findings is not None:
        regressions = [f for f in findings if f.verdict in ("worse", "missing", "inconclusive")]
        parts.append("### Regression gate\n\n")
        parts.append(render_findings(regressions) if regressions else "No regression against the baseline.\n")
        parts.append("\n")
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
    parts.append(
        f"\n{machine['platform']}/{machine['machine']}, {machine['cpu_count']} CPUs, "
        f"{machine['memory_bytes'] / 1024**3:.0f} GiB; "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + f"; commit `{str(results.get('commit'))[:10]}`; {results['options']['rounds']} rounds"
        + (" (quick)" if results["options"].get("quick") else "") + ".\n"
    )
    return "".join(parts)


README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def readme_section(results: dict[str, Any]) -> str:
    """The headline table as the README shows it, generated from a result file."""
    machine = results["machine"]
    return (_table(HEADLINE_HEADER, headline_rows(results))
            + f"\nFrom `{results.get('source_file', 'a result file')}`: {machine['platform']}/{machine['machine']}, "
            f"{machine['cpu_count']} CPUs, commit `{str(results.get('commit'))[:10]}`, "
            f"{results['options']['rounds']} rounds. Regenerate with "
            "`python -m benchmarks report --readme README.md RESULTS`.\n")


def update_readme(readme: Path, results: dict[str, Any]) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + readme_section(results) + text[end:], encoding="utf-8")


def render_charts(results: dict[str, Any], history: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = _order(results)
    written = []

    figure, axis = plt.subplots(figsize=(8, 4))
    data = [[v * 1000 for v in samples(results["variants"][n], "startup_warm_s")] for n in names]
    present = [(n, d) for n, d in zip(names, data, strict=True) if d]
    if present:
        axis.boxplot([d for _, d in present], tick_labels=[n for n, _ in present])
        for index, (_, values) in enumerate(present, start=1):
            axis.scatter([index] * len(values), values, s=10, alpha=0.6)
        axis.set_yscale("log")
    axis.set_ylabel("spawn → first 200 /health (ms, log)")
    axis.set_title("Startup, warm")
    axis.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    written.append(_save(figure, folder / "startup.png"))

    for metric, title, filename in (("idle_pss_bytes", "Idle PSS of the process tree", "memory.png"),
                                    ("size_bytes", "Size on disk", "size.png")):
        figure, axis = plt.subplots(figsize=(8, 4))
        values = []
        for name in names:
            variant = results["variants"][name]
            value = _median(samples(variant, metric)) if METRICS[metric].kind == "sample" else variant.get(metric)
            values.append((value or 0) / MIB)
        axis.bar(names, values, color=["#c44" if n == BASELINE else "#48c" for n in names])
        axis.set_ylabel("MiB")
        axis.set_title(title)
        axis.tick_params(axis="x", labelrotation=20)
        figure.tight_layout()
        written.append(_save(figure, folder / filename))

    figure, axis = plt.subplots(figsize=(8, 4))
    for name in names:
        if name == BASELINE:
            continue
        points = []
        for index, run in enumerate(history):
            variants = run.get("variants", {})
            if name in variants and BASELINE in variants:
                a, b = samples(variants[name], "startup_warm_s"), samples(variants[BASELINE], "startup_warm_s")
                if a and b:
                    points.append((index, statistics.median(a) / statistics.median(b)))
        if points:
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    labels = [str(run.get("commit") or "?")[:7] for run in history]
    axis.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    axis.set_ylabel(f"startup ÷ {BASELINE}")
    axis.set_title("Startup ratio over commits")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)
    figure.tight_layout()
    written.append(_save(figure, folder / "trend.png"))
    return written


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
                 f.change.text() if f.change else f.note, f"+{f.threshold:.0%}"] for f in findings]
        sections.append("<h2>Regression gate</h2>" + _html_table(
            ["verdict", "variant", "metric", f"change of ratio to {BASELINE}", "threshold"], rows))
    sections.append("<h2>Headline</h2>" + _html_table(HEADLINE_HEADER, headline_rows(results)))
    for chart in charts:
        encoded = base64.b64encode(chart.read_bytes()).decode()
        sections.append(f'<figure><img alt="{chart.stem}" src="data:image/png;base64,{encoded}"></figure>')
    sections.append("<h2>All metrics</h2>" + _html_table(DETAIL_HEADER, detail_rows(results)))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>peft-engine benchmarks</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
