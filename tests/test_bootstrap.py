"""The bootstrap behind every interval and paired verdict (mushroom.core.bootstrap), on figures made up here.

tests/test_cv.py checks it through the pooled report; these pin what that cannot see: which percentiles make
the interval, that the estimate uses every row, how figures undefined on a resample are handled, and that a
seed gives the same resamples again.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mushroom.core import bootstrap


def rows_counted(rows: np.ndarray) -> dict[str, float | None]:
    """A figure that sees exactly which rows it was given."""
    return {"rows": float(len(rows))}


def test_the_interval_is_the_central_95_percent_of_the_resampled_figures() -> None:
    # 1,000 resamples of 1 to 1,000 rows: the figure on each is its size, so the interval must be the
    # 2.5th and 97.5th percentiles of 1..1000, whatever the draws.
    samples = [np.arange(n) for n in range(1, 1001)]
    interval = bootstrap.confidence_intervals(rows_counted, 1000, samples)["rows"]
    assert interval["estimate"] == 1000.0  # every row, not a resample
    assert interval["low"] == pytest.approx(np.percentile(np.arange(1, 1001), 2.5))
    assert interval["high"] == pytest.approx(np.percentile(np.arange(1, 1001), 97.5))
    ninety = bootstrap.confidence_intervals(rows_counted, 1000, samples, confidence=0.9)["rows"]
    assert ninety["low"] == pytest.approx(np.percentile(np.arange(1, 1001), 5.0))
    assert ninety["high"] == pytest.approx(np.percentile(np.arange(1, 1001), 95.0))


def test_a_paired_difference_compares_each_resample_with_itself() -> None:
    samples = [np.arange(n) for n in range(1, 200)]
    same = bootstrap.paired_differences(rows_counted, rows_counted, 300, samples, lambda name: False)["rows"]
    assert (same["before"], same["after"], same["difference"]) == (300.0, 300.0, 0.0)
    assert (same["low"], same["high"], same["verdict"]) == (0.0, 0.0, bootstrap.CANT_TELL)

    def one_more(rows: np.ndarray) -> dict[str, float | None]:
        return {"rows": len(rows) + 1.0}

    more = bootstrap.paired_differences(rows_counted, one_more, 300, samples, lambda name: False)["rows"]
    assert (more["difference"], more["low"], more["high"]) == (1.0, 1.0, 1.0)
    assert more["verdict"] == bootstrap.BETTER
    fewer = bootstrap.paired_differences(rows_counted, one_more, 300, samples, lambda name: True)["rows"]
    assert fewer["verdict"] == bootstrap.WORSE  # the same rise, for a figure where lower is better


def undefined_on_short_samples(rows: np.ndarray) -> dict[str, float | None]:
    """Like a precision on a resample without the class: None under 10 rows, NaN under 20."""
    n = len(rows)
    return {"rows": None if n < 10 else math.nan if n < 20 else float(n)}


def test_figures_undefined_on_some_resamples_are_left_out_of_the_interval() -> None:
    samples = [np.arange(n) for n in range(1, 121)]  # 19 give no figure; 20..120 do
    interval = bootstrap.confidence_intervals(undefined_on_short_samples, 120, samples)["rows"]
    assert interval["low"] == pytest.approx(np.percentile(np.arange(20, 121), 2.5))
    assert interval["high"] == pytest.approx(np.percentile(np.arange(20, 121), 97.5))
    paired = bootstrap.paired_differences(
        rows_counted, undefined_on_short_samples, 120, samples, lambda _: False
    )
    assert (paired["rows"]["low"], paired["rows"]["high"]) == (0.0, 0.0)  # from the 101 defined pairs


def measured(rows: np.ndarray) -> dict[str, float | None]:
    return {"precision": 0.5}


def test_a_figure_undefined_on_every_row_has_no_estimate_and_no_interval() -> None:
    for value in (None, math.nan):

        def undefined(rows: np.ndarray, value: float | None = value) -> dict[str, float | None]:
            return {"precision": value, "rows": float(len(rows))}

        samples = [np.arange(5)] * 10
        interval = bootstrap.confidence_intervals(undefined, 5, samples)["precision"]
        assert interval == {"estimate": None, "low": None, "high": None}
        paired = bootstrap.paired_differences(undefined, rows_counted, 5, samples, lambda _: False)
        assert paired["rows"]["difference"] == 0.0
        both = bootstrap.paired_differences(undefined, undefined, 5, samples, lambda _: False)["precision"]
        assert both["difference"] is None and both["verdict"] == bootstrap.CANT_TELL
        one = bootstrap.paired_differences(undefined, measured, 5, samples, lambda _: False)["precision"]
        assert (one["before"], one["after"], one["difference"]) == (None, 0.5, None)
        assert (one["low"], one["high"], one["verdict"]) == (None, None, bootstrap.CANT_TELL)


def test_a_figure_only_one_side_has_is_skipped_and_the_rest_compared() -> None:
    def old(rows: np.ndarray) -> dict[str, float | None]:
        return {"retired": 1.0, "rows": float(len(rows))}

    result = bootstrap.paired_differences(old, rows_counted, 10, [np.arange(10)] * 5, lambda _: False)
    assert list(result) == ["rows"]


def test_the_same_seed_draws_the_same_resamples() -> None:
    strata, units = ["a"] * 30 + ["b"] * 30, [f"u{i // 2}" for i in range(60)]
    first = bootstrap.resamples(strata, units, 20, seed=7)
    again = bootstrap.resamples(strata, units, 20, seed=7)
    other = bootstrap.resamples(strata, units, 20, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))


def test_resampling_needs_a_unit_for_every_row_and_draws_nothing_from_no_rows() -> None:
    with pytest.raises(ValueError):
        bootstrap.resamples(["a", "a", "b"], ["u1", "u2"], 5, seed=0)
    empty = bootstrap.resamples([], [], 3, seed=0)
    assert len(empty) == 3
    for sample in empty:
        assert sample.shape == (0,) and sample.dtype == np.int64
        assert np.arange(4)[sample].shape == (0,)  # usable as row indices
