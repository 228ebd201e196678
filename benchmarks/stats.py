"""Changes with confidence intervals (bootstrap, ``scipy.stats``): nothing hand-rolled but the pairing.

- :func:`paired_change`: head against base measured in the same rounds of one run. Each round gives
  one ratio head/base (both launched within seconds of each other, so the machine's drift cancels);
  the change is the median ratio, with a bootstrap interval over rounds.
- :func:`unpaired_change`: a run against a stored baseline (memory): ratio of medians, both samples
  resampled.
- :func:`ratio_of_medians`: one variant against another in a report (never gated).

No p-values: with 5 samples a rank test cannot go below its floor (Mann-Whitney U: 0.008 whatever
the data), so it says nothing an interval does not. The interval also says how large a change the
run could have detected (:meth:`Change.detectable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 4000
MIN_SAMPLES = 3  # fewer: no interval, so a sampled metric is at most inconclusive


@dataclass(frozen=True)
class Change:
    value: float  # new / old (1.10: 10 % more)
    low: float | None  # None: too few samples for an interval
    high: float | None
    n: int = 1
    exact: bool = False  # a deterministic figure (size, instructions): the value is the change
    absolute: bool = False  # a difference new − old in the metric's unit, not a ratio

    def text(self) -> str:
        if self.absolute:  # seconds
            shown = f"{self.value * 1000:+.1f} ms"
            return shown if self.low is None or self.high is None else \
                f"{shown} [{self.low * 1000:+.1f} – {self.high * 1000:+.1f}]"
        if self.low is None or self.high is None:
            return f"{self.value:.3f}×"
        return f"{self.value:.3f}× [{self.low:.3f}–{self.high:.3f}]"

    def detectable(self, threshold: float) -> float | None:
        """The smallest increase this run would have called worse: the threshold plus the interval's
        lower half-width (for a deterministic scalar, the threshold itself)."""
        if self.exact:
            return threshold
        if self.low is None:
            return None
        return threshold + max(0.0, self.value - self.low)


Ratio = Change  # reports call a change between two variants a ratio


def _interval(data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], seed: int,
              paired: bool = False) -> tuple[float | None, float | None]:
    if any(len(sample) < MIN_SAMPLES for sample in data):
        return None, None
    if all(len(set(sample.tolist())) < 2 for sample in data):
        value = float(statistic(*data))
        return value, value  # every sample equal: the change is exact
    result = stats.bootstrap(data, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", vectorized=True, paired=paired,
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_change(head: Sequence[float], base: Sequence[float], seed: int = 0) -> Change:
    """Median of the per-round ratios head/base, with a bootstrap interval over rounds."""
    if len(head) != len(base):
        raise ValueError(f"paired samples differ in length: {len(head)} and {len(base)}")
    ratios = np.asarray(head, dtype=float) / np.asarray(base, dtype=float)

    def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(values, axis=axis))

    value = float(np.median(ratios))
    low, high = _interval((ratios,), median, seed)
    return Change(value, low, high, len(ratios))


def paired_difference(head: Sequence[float], base: Sequence[float], seed: int = 0) -> Change:
    """Median of the per-round differences head − base, with a bootstrap interval over rounds."""
    if len(head) != len(base):
        raise ValueError(f"paired samples differ in length: {len(head)} and {len(base)}")
    differences = np.asarray(head, dtype=float) - np.asarray(base, dtype=float)

    def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(values, axis=axis))

    low, high = _interval((differences,), median, seed)
    return Change(float(np.median(differences)), low, high, len(differences), absolute=True)


def unpaired_difference(current: Sequence[float], reference: Sequence[float], seed: int = 0) -> Change:
    a, b = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(x, axis=axis) - np.median(y, axis=axis))

    low, high = _interval((a, b), statistic, seed)
    return Change(float(np.median(a) - np.median(b)), low, high, min(len(a), len(b)), absolute=True)


def unpaired_change(current: Sequence[float], reference: Sequence[float], seed: int = 0) -> Change:
    """median(current) / median(reference), each sample resampled independently."""
    a, b = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.median(x, axis=axis) / np.median(y, axis=axis))

    value = float(np.median(a) / np.median(b))
    low, high = _interval((a, b), statistic, seed)
    return Change(value, low, high, min(len(a), len(b)))


def ratio_of_medians(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Change:
    return unpaired_change(a, b, seed)
