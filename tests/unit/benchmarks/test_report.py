"""Report rendering, snapshot-tested (set UPDATE_SNAPSHOTS=1 to rewrite the snapshots on purpose)."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.gate import compare
from benchmarks.report import render_charts, render_html, render_markdown
from tests.unit.benchmarks.synthetic import pair

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"snapshot {name} is missing; create it deliberately with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; UPDATE_SNAPSHOTS=1 if that is intended"


def test_markdown_snapshot() -> None:
    baseline, current = pair(1.0, seed=1), pair(1.2, seed=2)
    check_snapshot("summary.md", render_markdown(current, compare(baseline, current)))


def test_regressions_come_first() -> None:
    baseline, current = pair(1.0, seed=1), pair(1.2, seed=2)
    markdown = render_markdown(current, compare(baseline, current))
    assert markdown.index("Regression gate") < markdown.index("Headline")
    assert "❌ worse | nuitka-standalone | startup (warm)" in markdown


def test_charts_and_self_contained_html(tmp_path: Path) -> None:
    baseline, current = pair(1.0, seed=1), pair(1.2, seed=2)
    charts = render_charts(current, [baseline, current], tmp_path)
    assert [c.name for c in charts] == ["startup.png", "memory.png", "size.png", "trend.png"]
    assert all(c.read_bytes().startswith(b"\x89PNG") for c in charts)
    page = render_html(current, compare(baseline, current), charts)
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page and "src=\"http" not in page
