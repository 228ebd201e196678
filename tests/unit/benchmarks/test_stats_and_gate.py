"""Statistics and the gate on synthetic samples with known answers."""

from __future__ import annotations

from benchmarks.gate import compare, gate_failed, verdict_for
from benchmarks.stats import Ratio, rank_test, ratio_of_medians
from tests.unit.benchmarks.synthetic import pair


def finding(findings, metric="startup_warm_s", variant="nuitka-standalone"):
    return next(f for f in findings if f.metric == metric and f.variant == variant)


def test_ratio_of_medians_interval_contains_the_truth() -> None:
    ratio = ratio_of_medians([1.0, 1.1, 0.9, 1.05, 0.95] * 3, [2.0, 2.2, 1.8, 2.1, 1.9] * 3)
    assert ratio.value == 0.5 and ratio.low < 0.5 < ratio.high


def test_rank_test_separates_and_refuses_tiny_samples() -> None:
    assert rank_test([1, 2, 3, 4, 5], [10, 11, 12, 13, 14]) < 0.05
    assert rank_test([1, 2], [3, 4]) is None


def test_twenty_percent_slower_startup_is_flagged() -> None:
    findings = compare(pair(1.0, seed=1), pair(1.2, seed=2))
    assert finding(findings).verdict == "worse"
    assert gate_failed(findings)


def test_three_percent_noise_is_not_flagged() -> None:
    findings = compare(pair(1.0, spread=0.03, seed=1), pair(1.0, spread=0.03, seed=3))
    assert finding(findings).verdict in ("ok", "better")
    assert not gate_failed(findings)


def test_straddling_interval_is_inconclusive() -> None:
    # +10% expected change against a 10% threshold, noisy and few samples: the interval straddles 1.10
    findings = compare(pair(1.0, spread=0.15, n=5, seed=4), pair(1.10, spread=0.15, n=5, seed=5))
    assert finding(findings).verdict == "inconclusive"
    assert not gate_failed(findings)


def test_size_is_near_exact() -> None:
    baseline, current = pair(), pair()
    current["variants"]["nuitka-standalone"]["size_bytes"] *= 1.03
    assert finding(compare(baseline, current), "size_bytes").verdict == "worse"
    current["variants"]["nuitka-standalone"]["size_bytes"] = baseline["variants"]["nuitka-standalone"]["size_bytes"] * 1.01
    assert finding(compare(baseline, current), "size_bytes").verdict == "ok"


def test_missing_variants_fail_the_gate() -> None:
    baseline, current = pair(), pair()
    del current["variants"]["nuitka-standalone"]
    findings = compare(baseline, current)
    assert finding(findings, "*").verdict == "missing" and gate_failed(findings)
    del current["variants"]["pyinstaller-onefile"]
    assert gate_failed(compare(baseline, current))


def test_machine_speed_cancels_out() -> None:
    """A machine twice as slow for every variant changes no ratio: nothing to report."""
    baseline, current = pair(seed=1), pair(seed=6)
    for variant in current["variants"].values():
        variant["samples"] = {k: [v * 2 for v in values] for k, values in variant["samples"].items()}
    assert not gate_failed(compare(baseline, current))


def test_verdict_without_interval() -> None:
    assert verdict_for(Ratio(1.2, None, None), 0.1, exact=True) == "worse"  # size: deterministic
    assert verdict_for(Ratio(1.2, None, None), 0.1) == "inconclusive"  # one sample: no evidence
    assert verdict_for(Ratio(0.8, None, None), 0.1) == "better"
    assert verdict_for(Ratio(1.05, None, None), 0.1) == "ok"


def test_build_time_is_reported_not_gated() -> None:
    baseline, current = pair(), pair()
    current["variants"]["nuitka-standalone"]["build"]["wall_seconds"] *= 3  # a cold ccache
    findings = compare(baseline, current)
    assert not [f for f in findings if f.metric.startswith("build")]
    assert not gate_failed(findings)


def test_labelled_variants_of_one_run_compare_base_and_head(tmp_path) -> None:
    import json

    from benchmarks.storage import load_results

    base, head = pair(1.0, seed=1), pair(1.2, seed=2)
    combined = {**head, "variants": {**head["variants"], **{f"base/{k}": v for k, v in base["variants"].items()}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(combined))
    assert sorted(load_results(f"{path}#base")["variants"]) == ["nuitka-standalone", "pyinstaller-onefile"]
    assert sorted(load_results(path)["variants"]) == ["nuitka-standalone", "pyinstaller-onefile"]
    assert gate_failed(compare(load_results(f"{path}#base"), load_results(path)))
