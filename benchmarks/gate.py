"""The regression gate: did a variant get worse *relative to the same-run PyInstaller baseline*?

For every variant and metric: change = (variant / baseline variant now) ÷ (the same ratio in the stored
baseline file). Verdicts, with the metric's threshold t:

- ``worse``: the whole confidence interval of the change is above 1 + t (the evidence says worse);
- ``inconclusive``: the interval straddles 1 + t: rerun;
- ``better``: the whole interval is below 1 − t;
- ``ok``: otherwise.

Scalar metrics (size) are near-deterministic and have no interval: their change is compared with
1 + t directly. A sampled metric with too few samples for an interval is at most ``inconclusive``:
one noisy sample is no evidence. Build times depend on the cache state and are not gated.
``worse`` fails the gate (exit 1), and so does ``missing``: a variant the baseline measured that this
run could not (its build broke), or a run without the reference variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from benchmarks.schema import METRICS, samples, scalar
from benchmarks.stats import Ratio, change_of_ratio
from benchmarks.variants import REFERENCE as BASELINE

Verdict = Literal["worse", "inconclusive", "ok", "better", "missing"]


@dataclass(frozen=True)
class Finding:
    variant: str
    metric: str
    verdict: Verdict
    change: Ratio | None
    threshold: float
    note: str = ""


def verdict_for(change: Ratio, threshold: float, exact: bool = False) -> Verdict:
    high_limit, low_limit = 1 + threshold, 1 - threshold
    if change.low is None or change.high is None:
        if change.value > high_limit:
            return "worse" if exact else "inconclusive"
        return "better" if change.value < low_limit else "ok"
    if change.low > high_limit:
        return "worse"
    if change.high > high_limit:
        return "inconclusive"
    if change.high < low_limit:
        return "better"
    return "ok"


def compare(baseline: dict[str, Any], current: dict[str, Any], reference: str = BASELINE) -> list[Finding]:
    findings: list[Finding] = []
    old_variants, new_variants = baseline["variants"], current["variants"]
    if reference not in new_variants or reference not in old_variants:
        return [Finding(reference, "*", "missing", None, 0.0, f"{reference} must be measured in both runs")]
    for name in sorted(set(old_variants) | set(new_variants)):
        if name == reference:
            continue
        if name not in new_variants:
            findings.append(Finding(name, "*", "missing", None, 0.0, "in the baseline but not measured now"))
            continue
        if name not in old_variants:
            continue  # new variant: nothing to compare with
        for metric in METRICS.values():
            if not metric.gated:
                continue
            if metric.kind == "sample":
                series = [samples(run[key], metric.name) for run, key in (
                    (new_variants, name), (new_variants, reference), (old_variants, name), (old_variants, reference))]
                if not all(series):
                    continue
                change = change_of_ratio(*series)
            else:
                values = [scalar(run[key], metric.name) for run, key in (
                    (new_variants, name), (new_variants, reference), (old_variants, name), (old_variants, reference))]
                if any(v is None or v == 0 for v in values):
                    continue
                now, now_ref, old, old_ref = values  # type: ignore[misc]
                change = Ratio((now / now_ref) / (old / old_ref), None, None)
            verdict = verdict_for(change, metric.threshold, exact=metric.kind == "scalar")
            findings.append(Finding(name, metric.name, verdict, change, metric.threshold))
    order = {"worse": 0, "missing": 1, "inconclusive": 2, "better": 3, "ok": 4}
    return sorted(findings, key=lambda f: (order[f.verdict], f.variant, f.metric))


def gate_failed(findings: list[Finding]) -> bool:
    return any(finding.verdict in ("worse", "missing") for finding in findings)


def render_findings(findings: list[Finding]) -> str:
    if not findings:
        return "No comparable metrics.\n"
    lines = ["| verdict | variant | metric | change of ratio to PyInstaller onefile | threshold |",
             "|---|---|---|---|---|"]
    marks = {"worse": "❌ worse", "inconclusive": "⚠️ inconclusive, rerun", "better": "✅ better", "ok": "ok",
             "missing": "❌ missing"}
    for finding in findings:
        label = METRICS[finding.metric].label if finding.metric in METRICS else finding.metric
        change = finding.change.text() if finding.change else finding.note
        lines.append(f"| {marks[finding.verdict]} | {finding.variant} | {label} | {change} | "
                     f"{'+' if finding.threshold else ''}{finding.threshold:.0%} |")
    return "\n".join(lines) + "\n"
