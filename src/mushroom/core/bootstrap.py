"""Confidence intervals by the bootstrap, and the paired comparison of two sets of predictions.

A figure measured on a few hundred photos moves by points when one photo changes. Resampling the photos
with replacement, and recomputing the figure on each resample, shows how far it could have landed
(Efron & Tibshirani, 1993, "An Introduction to the Bootstrap"; percentile intervals).

- **Clusters.** Photos that are not independent (copies of one photo, one photographer's series) are
  drawn together: each resample draws whole *units* (a duplicate group, a source family).
- **Strata.** Units are drawn within each stratum (e.g. each genus and each kind of negative), so every
  resample keeps the design's counts: a balanced accuracy always averages the same classes.
- **Paired.** Two recipes predicted on the same photos are compared on the *same* resamples, so what
  the photos have in common (a hard photo is hard for both) cancels out of the difference.

Pure NumPy: no PyTorch needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
Statistic = Callable[[np.ndarray], Mapping[str, float | None]]

#: Verdicts of a paired comparison: the interval of the difference is above 0, below 0, or holds 0.
BETTER, WORSE, CANT_TELL = "better", "worse", "can't tell"


def resamples(strata: Sequence[object], units: Sequence[object], n: int, seed: int) -> list[np.ndarray]:
    """``n`` bootstrap resamples, as row indices: within each stratum, as many units as it holds, drawn
    with replacement, each bringing all of its rows."""
    rng = np.random.default_rng(seed)
    keys = list(zip(strata, units, strict=True))
    members: dict[object, dict[object, list[int]]] = {}
    for row, (stratum, unit) in enumerate(keys):
        members.setdefault(stratum, {}).setdefault(unit, []).append(row)
    blocks = [[np.asarray(rows) for rows in by_unit.values()] for by_unit in members.values()]
    samples = []
    for _ in range(n):
        drawn = [block[i] for block in blocks for i in rng.integers(len(block), size=len(block))]
        samples.append(np.concatenate(drawn) if drawn else np.empty(0, np.int64))
    return samples


def _interval(values: list[float | None], confidence: float) -> tuple[float | None, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _point(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def confidence_intervals(
    statistic: Statistic,
    rows: int,
    samples: Sequence[np.ndarray],
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Per figure of ``statistic`` (called with row indices): the estimate on all ``rows`` rows and its
    percentile interval over ``samples``."""
    estimate = statistic(np.arange(rows))
    replicates = [statistic(sample) for sample in samples]
    result = {}
    for name, value in estimate.items():
        low, high = _interval([r.get(name) for r in replicates], confidence)
        result[name] = {"estimate": _point(value), "low": low, "high": high}
    return result


def paired_differences(
    before: Statistic,
    after: Statistic,
    rows: int,
    samples: Sequence[np.ndarray],
    lower_is_better: Callable[[str], bool],
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Per figure: ``after - before`` on all rows and its interval over the same ``samples`` (rows
    aligned: row ``i`` is the same photo in both), with a verdict on ``after``: better, worse, or can't
    tell (the interval holds 0). ``lower_is_better(name)`` says which way a figure improves."""
    everything = np.arange(rows)
    first, second = before(everything), after(everything)
    pairs = [(before(sample), after(sample)) for sample in samples]
    result = {}
    for name in first:
        if name not in second:
            continue
        a, b = _point(first[name]), _point(second[name])
        deltas: list[float | None] = [
            None if x.get(name) is None or y.get(name) is None else y[name] - x[name]  # type: ignore[operator]
            for x, y in pairs
        ]
        low, high = _interval(deltas, confidence)
        verdict = CANT_TELL
        if low is not None and high is not None and (low > 0 or high < 0):
            up = low > 0
            verdict = WORSE if up == lower_is_better(name) else BETTER
        result[name] = {
            "before": a,
            "after": b,
            "difference": None if a is None or b is None else b - a,
            "low": low,
            "high": high,
            "verdict": verdict,
        }
    return result
