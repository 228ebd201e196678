"""Statistics and the gate on synthetic samples with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gate import compare, gate_failed, undecided, verdict_for
from benchmarks.schema import SCHEMA_VERSION, upgrade
from benchmarks.stats import Change, paired_change, paired_difference, ratio_of_medians
from benchmarks.storage import load_results
from tests.unit.benchmarks.synthetic import NUITKA, same_run, scaled, stored


def finding(findings, metric="startup_warm_s", variant="nuitka-standalone"):
    return next(f for f in findings if f.metric == metric and f.variant == variant)


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    return path


def test_ratio_of_medians_interval_contains_the_truth() -> None:
    ratio = ratio_of_medians([1.0, 1.1, 0.9, 1.05, 0.95] * 3, [2.0, 2.2, 1.8, 2.1, 1.9] * 3)
    assert ratio.value == 0.5 and ratio.low < 0.5 < ratio.high


def test_pairing_cancels_what_both_rounds_share() -> None:
    """Rounds that are slow for both (a busy neighbour) do not widen a paired interval."""
    drift = [1.0, 1.6, 0.8, 1.3, 0.9, 1.5, 1.1, 0.7, 1.2]
    base = [0.3 * d for d in drift]
    head = [0.33 * d for d in drift]
    change = paired_change(head, base)
    assert change.value == pytest.approx(1.1) and change.high - change.low < 0.01
    assert ratio_of_medians(head, base).high - ratio_of_medians(head, base).low > 0.3


def test_paired_difference_in_seconds() -> None:
    change = paired_difference([0.033, 0.034, 0.032, 0.035, 0.033], [0.003, 0.004, 0.002, 0.003, 0.003])
    assert change.absolute and change.value == pytest.approx(0.030) and change.low > 0.010
    assert "+30.0 ms" in change.text()


@pytest.mark.parametrize(("factors", "verdict"), [
    ({"idle_pss_bytes": 1.10}, "worse"),
    ({"idle_pss_bytes": 1.00}, "ok"),
    ({"idle_pss_bytes": 0.90}, "better"),
])
def test_memory_against_a_stored_baseline_is_gated_directly(factors: dict, verdict: str) -> None:
    findings = compare(stored(), {**stored(**factors), "run_id": "another run"})
    assert finding(findings, "idle_pss_bytes").verdict == verdict


def test_a_regression_in_shared_code_is_caught_in_every_variant() -> None:
    """+8 MiB in every variant (the backend regressed): a ratio to PyInstaller would cancel it; the same
    variant against itself does not."""
    before = stored()
    after = stored()
    for variant in after["variants"].values():
        variant["samples"]["idle_pss_bytes"] = [v + 8 * 2**20 for v in variant["samples"]["idle_pss_bytes"]]
    findings = compare(before, after)
    assert {f.variant for f in findings if f.metric == "idle_pss_bytes" and f.verdict == "worse"} == {
        "nuitka-standalone", "pyinstaller-onedir", "pyinstaller-onefile"}
    assert gate_failed(findings)


def test_wall_clock_is_gated_only_within_one_run() -> None:
    slower = {**stored(startup_warm_s=1.5), "run_id": "another run"}
    assert not [f for f in compare(stored(), slower) if f.metric == "startup_warm_s"], \
        "across runs wall-clock is reported, never gated"
    pr = same_run(scaled(NUITKA, startup_warm_s=1.3), NUITKA)
    findings = compare(load_results_from(pr, "base"), load_results_from(pr, ""))
    assert finding(findings).verdict == "worse"


def test_a_waiting_regression_shows_off_cpu_even_when_wall_clock_is_noisy() -> None:
    pr = same_run(scaled(NUITKA, startup_warm_s=1.09, startup_blocked_s=11.0), NUITKA, spread=0.3, n=12)
    findings = compare(load_results_from(pr, "base"), load_results_from(pr, ""))
    assert finding(findings, "startup_blocked_s").verdict == "worse"
    assert finding(findings).verdict == "inconclusive", "a 9 % change in ±30 % noise: undecided, said so"
    assert "startup_warm_s" in [f.metric for f in undecided(findings)]


def test_no_change_is_not_flagged() -> None:
    pr = same_run(NUITKA, NUITKA, spread=0.03)
    findings = compare(load_results_from(pr, "base"), load_results_from(pr, ""))
    assert not gate_failed(findings)


def test_deterministic_figures_are_compared_directly() -> None:
    for metric, factor, verdict in (("size_bytes", 1.03, "worse"), ("size_bytes", 1.01, "ok"),
                                    ("startup_instructions", 1.02, "worse"), ("startup_instructions", 1.005, "ok")):
        findings = compare(stored(), {**stored(**{metric: factor}), "run_id": "x"})
        assert finding(findings, metric).verdict == verdict, (metric, factor)
        assert finding(findings, metric).detectable == finding(findings, metric).threshold


def test_missing_variants_fail_the_gate() -> None:
    baseline, current = stored(), stored()
    del current["variants"]["nuitka-standalone"]
    findings = compare(baseline, current)
    assert finding(findings, "*").verdict == "missing" and gate_failed(findings)


def test_verdict_without_interval() -> None:
    assert verdict_for(Change(1.2, None, None, exact=True), 0.1, exact=True) == "worse"
    assert verdict_for(Change(1.2, None, None, n=2), 0.1) == "inconclusive"  # two samples: no evidence
    assert verdict_for(Change(0.8, None, None), 0.1) == "better"
    assert verdict_for(Change(1.05, None, None), 0.1) == "ok"


def test_build_time_is_reported_not_gated() -> None:
    baseline, current = stored(), stored()
    current["variants"]["nuitka-standalone"]["build"]["wall_seconds"] *= 3  # a cold ccache
    assert not [f for f in compare(baseline, current) if f.metric.startswith("build")]


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    old = stored()
    old["schema_version"] = 1
    for variant in old["variants"].values():
        del variant["rounds"]
    del old["run_id"]
    upgraded = upgrade(old)
    assert upgraded["schema_version"] == SCHEMA_VERSION and upgraded["run_id"] is None
    assert upgraded["variants"]["nuitka-standalone"]["rounds"]["idle_pss_bytes"] == list(range(9))
    assert load_results(write(tmp_path, old))["variants"]


def load_results_from(document: dict, label: str) -> dict:
    from benchmarks.storage import select

    return select(document, label)
