"""The regression gate: did a variant get worse than *itself* before?

Every metric compares the same variant, old against new; never a ratio to another variant built
from the same code, where a regression in shared code (the backend, the web stack, a dependency)
would cancel out.

- **Same run** (a pull request: ``run --also base=../base``, then ``compare results.json#base
  results.json``): head and base were launched alternately in the same rounds, so each sampled
  metric is the median of the per-round ratios head/base, with a bootstrap interval over rounds.
  Every gated metric counts, wall-clock included.
- **Against a stored baseline** (``.ci/run``, nightly): only what is stable across runs and machines of
  one kind is gated: memory (ratio of medians with an interval), size and startup instructions
  (deterministic, compared directly). Wall-clock is reported, normalized by the calibration process,
  and never gated.

Verdicts, with the metric's threshold *t*:

- ``worse``: the whole interval lies above 1 + t (for a deterministic scalar: the change does);
- ``inconclusive``: the interval straddles 1 + t, so the run could not tell; ``run`` keeps adding rounds
  until no gated metric is (or its time cap), and the report names what stayed undecided;
- ``better``: the whole interval lies below 1 − t; ``ok``: otherwise.

``worse`` fails the gate (exit 1), and so does ``missing``: a variant measured before and not now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from benchmarks.schema import METRICS, Metric, paired, samples, scalar
from benchmarks.stats import (
    MIN_SAMPLES,
    Change,
    paired_change,
    paired_difference,
    unpaired_change,
    unpaired_difference,
)

Verdict = Literal["worse", "inconclusive", "ok", "better", "missing"]
ORDER = {"worse": 0, "missing": 1, "inconclusive": 2, "better": 3, "ok": 4}


@dataclass(frozen=True)
class Finding:
    variant: str
    metric: str
    verdict: Verdict
    change: Change | None
    threshold: float
    note: str = ""

    @property
    def detectable(self) -> float | None:
        return self.change.detectable(self.threshold) if self.change else None


def verdict_for(change: Change, threshold: float, exact: bool = False) -> Verdict:
    center = 0.0 if change.absolute else 1.0
    high_limit, low_limit = center + threshold, center - threshold
    if change.low is None or change.high is None:
        if change.value > high_limit:
            return "worse" if exact else "inconclusive"
        return "better" if change.value < low_limit else "ok"
    if change.low > high_limit:
        return "worse"
    if change.high > high_limit:
        return "inconclusive"
    return "better" if change.high < low_limit else "ok"


def same_run(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Both selections come from one run (``results.json#base`` and ``results.json``)."""
    return old.get("run_id") is not None and old.get("run_id") == new.get("run_id")


def gated(metric: Metric, paired_run: bool) -> bool:
    return metric.gate == "both" or (metric.gate == "same-run" and paired_run)


def compare_metric(metric: Metric, old: dict[str, Any], new: dict[str, Any], paired_run: bool,
                   seed: int = 0) -> Change | None:
    if metric.kind == "scalar":
        before, now = scalar(old, metric.name), scalar(new, metric.name)
        if not before or now is None:
            return None
        return Change(now / before, None, None, 1, exact=True)
    if paired_run:
        head, base = paired(new, old, metric.name)
        if not head:
            return None
        return paired_difference(head, base, seed) if metric.absolute else paired_change(head, base, seed)
    now_samples, old_samples = samples(new, metric.name), samples(old, metric.name)
    if not now_samples or not old_samples:
        return None
    if metric.absolute:
        return unpaired_difference(now_samples, old_samples, seed)
    return unpaired_change(now_samples, old_samples, seed)


def compare(old: dict[str, Any], new: dict[str, Any], *, metrics: tuple[str, ...] | None = None) -> list[Finding]:
    """Every variant of ``old`` against the same variant in ``new``."""
    paired_run = same_run(old, new)
    findings: list[Finding] = []
    old_variants, new_variants = old["variants"], new["variants"]
    for name in sorted(set(old_variants) | set(new_variants)):
        if name not in new_variants:
            findings.append(Finding(name, "*", "missing", None, 0.0, "measured before, not now"))
            continue
        if name not in old_variants:
            continue  # new variant: nothing to compare with
        for metric in METRICS.values():
            if not gated(metric, paired_run) or (metrics is not None and metric.name not in metrics):
                continue
            change = compare_metric(metric, old_variants[name], new_variants[name], paired_run)
            if change is None:
                continue
            verdict = verdict_for(change, metric.threshold, exact=change.exact)
            findings.append(Finding(name, metric.name, verdict, change, metric.threshold))
    return sorted(findings, key=lambda f: (ORDER[f.verdict], f.variant, f.metric))


def gate_failed(findings: list[Finding]) -> bool:
    return any(finding.verdict in ("worse", "missing") for finding in findings)


def undecided(findings: list[Finding]) -> list[Finding]:
    """Inconclusive findings that more rounds could decide (enough samples for an interval)."""
    return [f for f in findings if f.verdict == "inconclusive" and f.change is not None and f.change.n >= MIN_SAMPLES]


def threshold_text(finding: Finding) -> str:
    metric = METRICS.get(finding.metric)
    if metric is not None and metric.absolute:
        return f"+{finding.threshold * 1000:.0f} ms"
    return f"+{finding.threshold:.0%}"


def detectable_text(finding: Finding) -> str:
    detectable = finding.detectable
    if detectable is None:
        return "—"
    metric = METRICS.get(finding.metric)
    return f"≥ +{detectable * 1000:.1f} ms" if metric is not None and metric.absolute else f"≥ +{detectable:.1%}"


def render_findings(findings: list[Finding], paired_run: bool | None = None) -> str:
    if not findings:
        return "No comparable metrics.\n"
    against = "head ÷ base, same run, paired by round" if paired_run else "now ÷ baseline"
    lines = [f"| verdict | variant | metric | change ({against}) [95% CI] | threshold | detectable |",
             "|---|---|---|---|---|---|"]
    marks = {"worse": "❌ worse", "inconclusive": "⚠️ undecided", "better": "✅ better", "ok": "ok",
             "missing": "❌ missing"}
    for finding in findings:
        label = METRICS[finding.metric].label if finding.metric in METRICS else finding.metric
        change = finding.change.text() if finding.change else finding.note
        lines.append(f"| {marks[finding.verdict]} | {finding.variant} | {label} | {change} | "
                     f"{threshold_text(finding)} | {detectable_text(finding)} |")
    return "\n".join(lines) + "\n"
