"""The pieces of adaptive runs and of the gate's self-test that need no measurement."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backend_client.manager import REPO_ROOT
from benchmarks.runner import against_baseline, against_labels
from benchmarks.selftest import INJECTIONS, caught_or_decided, copy_checkout
from tests.unit.benchmarks.synthetic import NUITKA, same_run, scaled, stored


def with_warm_ratios(document: dict, ratios: list[float]) -> dict:
    """Head's warm startups set to ``ratios`` × base's, round by round."""
    base = document["variants"]["base/nuitka-standalone"]["samples"]["startup_warm_s"]
    document["variants"]["nuitka-standalone"]["samples"]["startup_warm_s"] = [b * r for b, r in zip(base, ratios, strict=True)]
    return document


STRADDLING = [0.90, 1.15, 1.00, 1.10, 0.95]  # median 1.00, but the interval reaches past +4 %


def test_rounds_continue_while_a_gated_metric_straddles_its_threshold() -> None:
    noisy = with_warm_ratios(same_run(NUITKA, NUITKA, spread=0.005, n=5), STRADDLING)
    assert any("startup_warm_s" in pending for pending in against_labels(["base"])(noisy))
    quiet = same_run(NUITKA, NUITKA, spread=0.005, n=5)
    assert against_labels(["base"])(quiet) == []


def test_an_injection_run_stops_once_the_regression_is_caught() -> None:
    caught = with_warm_ratios(same_run(scaled(NUITKA, startup_blocked_s=11.0), NUITKA, spread=0.005, n=5),
                              STRADDLING)
    metrics = ("startup_warm_s", "startup_blocked_s")
    assert against_labels(["base"], metrics)(caught), "wall-clock is still undecided"
    assert caught_or_decided(metrics)(caught) == [], "but the off-CPU time caught it: stop"


def test_against_a_baseline_only_what_is_stable_decides() -> None:
    assert against_baseline(stored())({**stored(startup_warm_s=1.5), "run_id": "other"}) == []


def test_the_copy_holds_tracked_and_untracked_files_but_not_ignored_ones(tmp_path: Path) -> None:
    copy = copy_checkout(REPO_ROOT, tmp_path / "copy")
    assert (copy / "backend" / "__init__.py").is_file() and (copy / "pyproject.toml").is_file()
    assert not (copy / ".venv").exists() and not (copy / "dist").exists()
    assert subprocess.run(["git", "rev-parse", "--git-dir"], cwd=copy, capture_output=True).returncode == 0


def test_each_injection_changes_the_backend_as_a_regression_would(tmp_path: Path) -> None:
    copy = copy_checkout(REPO_ROOT, tmp_path / "copy")
    INJECTIONS["import-sleep"].apply(copy, REPO_ROOT)
    assert "_selftest_time.sleep(0.03)" in (copy / "backend" / "__init__.py").read_text()
    INJECTIONS["resident-memory"].apply(copy, REPO_ROOT)
    assert "bytearray(4 * 2**20)" in (copy / "backend" / "app.py").read_text()
    compile((copy / "backend" / "app.py").read_text(), "app.py", "exec")
    with pytest.raises(RuntimeError, match="which is not built"):  # never a guessed size
        INJECTIONS["size"].apply(copy, tmp_path / "unbuilt-base")
    built = tmp_path / "base" / "dist" / "nuitka-standalone"
    built.mkdir(parents=True)
    (built / "program.bin").write_bytes(b"x" * 200_000)
    INJECTIONS["size"].apply(copy, tmp_path / "base")
    assert (copy / "backend" / "resources" / "selftest-ballast.bin").stat().st_size == 10_000
