"""Ratios with confidence intervals (bootstrap) and rank tests, from ``scipy.stats``: nothing hand-rolled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Ratio:
    value: float
    low: float | None  # None when there are too few samples for an interval
    high: float | None

    def text(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.2f}×"
        return f"{self.value:.2f}× [{self.low:.2f}–{self.high:.2f}]"


def _median_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(a, axis=axis) / np.median(b, axis=axis)


def _interval(data: tuple[Sequence[float], ...], statistic, seed: int) -> tuple[float | None, float | None]:  # type: ignore[no-untyped-def]
    if any(len(sample) < 2 for sample in data) or all(len(set(sample)) < 2 for sample in data):
        return None, None
    result = stats.bootstrap(
        tuple(np.asarray(sample, dtype=float) for sample in data), statistic, n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE, method="percentile", vectorized=True, random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def ratio_of_medians(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Ratio:
    """median(a) / median(b) with a bootstrap interval (the two samples resampled independently)."""
    value = float(np.median(a) / np.median(b))
    low, high = _interval((a, b), _median_ratio, seed)
    return Ratio(value, low, high)


def change_of_ratio(
    current: Sequence[float], current_base: Sequence[float], old: Sequence[float], old_base: Sequence[float],
    seed: int = 0,
) -> Ratio:
    """How the ratio variant / baseline-variant moved between two runs: (c/cb) / (o/ob), with interval.

    Comparing ratios to a reference measured in the same run cancels most of the difference between
    machines and between a quiet and a busy moment."""

    def statistic(c: np.ndarray, cb: np.ndarray, o: np.ndarray, ob: np.ndarray, axis: int = -1) -> np.ndarray:
        return _median_ratio(c, cb, axis) / _median_ratio(o, ob, axis)

    data = (current, current_base, old, old_base)
    value = float(statistic(*(np.asarray(d, dtype=float) for d in data)))
    low, high = _interval(data, statistic, seed)
    return Ratio(value, low, high)


def rank_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann–Whitney U p-value; None when a sample is too small to say anything."""
    if len(a) < 3 or len(b) < 3:
        return None
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
