"""Report rendering, snapshot-tested (set UPDATE_SNAPSHOTS=1 to rewrite the snapshots on purpose)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend_client.manager import REPO_ROOT
from benchmarks.gate import compare
from benchmarks.report import counterpart, readme_section, render_charts, render_html, render_markdown
from tests.unit.benchmarks.synthetic import stored

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"snapshot {name} is missing; create it deliberately with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; UPDATE_SNAPSHOTS=1 if that is intended"


def regressed() -> tuple[dict, dict]:
    return stored(), {**stored(idle_pss_bytes=1.2), "run_id": "later"}


def test_markdown_snapshot() -> None:
    baseline, current = regressed()
    check_snapshot("summary.md", render_markdown(current, compare(baseline, current), baseline))


def test_regressions_come_first_and_no_p_values() -> None:
    baseline, current = regressed()
    markdown = render_markdown(current, compare(baseline, current), baseline)
    assert markdown.index("Regression gate") < markdown.index("Headline")
    assert "❌ worse | nuitka-standalone | idle PSS (tree)" in markdown
    assert "p=" not in markdown


def test_sizes_compare_like_with_like() -> None:
    assert counterpart("nuitka-standalone") == "pyinstaller-onedir"
    assert counterpart("nuitka-onefile") == "pyinstaller-onefile"
    assert counterpart("base/nuitka-onefile") == "pyinstaller-onefile"
    assert counterpart("source") is None and counterpart("pyinstaller-onedir") is None
    table = readme_section(stored())
    row = next(line for line in table.splitlines() if line.startswith("| nuitka-standalone"))
    assert "1.11× onedir" in row  # 1000 MB folder ÷ 900 MB folder, not ÷ a 300 MB onefile


def test_charts_and_self_contained_html(tmp_path: Path) -> None:
    baseline, current = regressed()
    charts = render_charts(current, [baseline, current], tmp_path)
    assert [c.name for c in charts] == ["startup.png", "memory.png", "size.png", "trend.png"]
    assert all(c.read_bytes().startswith(b"\x89PNG") for c in charts)
    page = render_html(current, compare(baseline, current), charts)
    assert page.count("data:image/png;base64,") == 4 and "Regression gate" in page


def test_help_works_without_the_bench_extras() -> None:
    """``python -m benchmarks --help`` must not need scipy; a command that does says how to get it."""
    code = ("import sys; sys.modules['scipy'] = None; sys.modules['matplotlib'] = None; "
            "from benchmarks.cli import main; sys.exit(main(sys.argv[1:]))")
    help_run = subprocess.run([sys.executable, "-c", code, "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert help_run.returncode == 0 and "selftest" in help_run.stdout
    command = subprocess.run([sys.executable, "-c", code.replace("sys.modules['scipy'] = None; ", "import importlib.util as u; u.find_spec = lambda n, *a: None if n in ('scipy', 'matplotlib') else __import__('importlib').machinery.PathFinder.find_spec(n); "),
                              "compare", "a.json", "b.json"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert command.returncode == 2 and "pip install -e '.[bench]'" in command.stderr


def test_baseline_keeps_only_the_variants_ci_measures(tmp_path: Path, monkeypatch, capsys) -> None:
    import benchmarks.storage
    from benchmarks.cli import main
    from benchmarks.storage import load_results, write_json

    monkeypatch.setattr(benchmarks.storage, "BASELINE_DIR", tmp_path / "baseline")
    full = write_json(tmp_path / "full.json", stored())
    measured = sorted(stored()["variants"])
    assert main(["baseline", str(full), "--variants", f"{measured[0]},nuitka-onefile", "--update"]) == 2
    assert "has no variant nuitka-onefile; it measured" in capsys.readouterr().err
    assert main(["baseline", str(full), "--variants", measured[0]]) == 2  # no --update: nothing written
    assert not (tmp_path / "baseline").exists()
    assert main(["baseline", str(full), "--variants", measured[0], "--update"]) == 0
    written = list((tmp_path / "baseline").glob("*.json"))
    assert len(written) == 1 and sorted(load_results(written[0])["variants"]) == [measured[0]]
