"""The near-duplicate search finds exactly the pairs that comparing every pair finds, whichever way it cuts
the hashes into bands, on random hashes and on clusters of near copies."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom.data.hashing import Band, _all_pairs, _band_pairs, band_plan, hamming_pairs


def every_pair(hashes: list[int], max_distance: int) -> list[tuple[int, int]]:
    """The definition, one pair at a time."""
    return [
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if (hashes[i] ^ hashes[j]).bit_count() <= max_distance
    ]


def near_copies(count: int, seed: int, clusters: int = 40, max_flips: int = 14) -> list[int]:
    """Random 64-bit hashes, half of them copies of a few originals with up to ``max_flips`` bits flipped
    (so that pairs sit on both sides of every distance), and some exact repeats."""
    rng = np.random.default_rng(seed)
    originals = [int(v) for v in rng.integers(0, 2**64, size=clusters, dtype=np.uint64)]
    hashes = [int(v) for v in rng.integers(0, 2**64, size=count // 2, dtype=np.uint64)]
    while len(hashes) < count:
        value = originals[int(rng.integers(clusters))]
        for bit in rng.choice(64, size=int(rng.integers(0, max_flips + 1)), replace=False):
            value ^= 1 << int(bit)
        hashes.append(value)
    rng.shuffle(hashes)
    return hashes


def as_pairs(found: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[int, int]]:
    return sorted((int(i), int(j)) for first, second in found for i, j in zip(first, second, strict=True))


@pytest.mark.parametrize("max_distance", [0, 1, 2, 5, 10, 13, 20, 40, 64])
def test_the_search_finds_exactly_the_pairs_within_the_distance(max_distance: int) -> None:
    hashes = near_copies(400, seed=max_distance)
    expected = every_pair(hashes, max_distance)
    assert hamming_pairs(hashes, max_distance) == expected
    assert expected or max_distance == 0  # the copies put pairs within reach


@pytest.mark.parametrize("max_distance", [0, 3, 10, 12])
@pytest.mark.parametrize("count", [10**4, 10**5, 10**6])
def test_every_band_plan_finds_the_same_pairs(max_distance: int, count: int) -> None:
    """The plans chosen for large sets, run here on a small one: the band search itself, not only the
    all-pairs fallback that a small set gets, is exact."""
    plan = band_plan(count, max_distance)
    assert plan is not None, "a large set with a small distance is searched by bands"
    hashes = near_copies(500, seed=count + max_distance)
    assert as_pairs(_band_pairs(np.asarray(hashes, dtype=np.uint64), max_distance, plan)) == every_pair(
        hashes, max_distance
    )


def test_a_pair_close_on_several_bands_is_reported_once() -> None:
    hashes = [0, 0, 1, 0, 2**63]  # identical on every band, or differing on one
    plan = band_plan(10**6, 4)
    assert plan is not None and len(plan) >= 2
    assert as_pairs(_band_pairs(np.asarray(hashes, dtype=np.uint64), 4, plan)) == every_pair(hashes, 4)


def test_plans_cover_the_distance_and_fall_back_to_all_pairs_when_cheaper() -> None:
    for max_distance in range(0, 20):
        plan = band_plan(10**6, max_distance)
        if plan is None:
            continue
        # Radii plus one sum past the distance, so a pair within it is within a radius on some band.
        assert sum(band.radius + 1 for band in plan) == max_distance + 1
        assert sum(band.width for band in plan) <= 64 and all(band.radius < band.width for band in plan)
    assert band_plan(50, 10) is None  # a few hashes: every pair is cheaper than an index
    assert band_plan(10**6, 40) is None  # most bits may differ: no band can narrow the search
    assert band_plan(10**5, 10) is not None


def test_band_flips_are_every_mask_within_the_radius() -> None:
    flips = Band(shift=3, width=6, radius=2).flips()
    assert sorted(flips) == sorted(m for m in range(64) if m.bit_count() <= 2)
    assert Band(shift=3, width=6, radius=2).probes() == len(flips) == 22


def test_all_pairs_on_blocks_finds_the_pairs_across_blocks() -> None:
    hashes = near_copies(3000, seed=5)  # more than one block of rows: 2**23 // 3000 = 2796
    found = as_pairs(_all_pairs(np.asarray(hashes, dtype=np.uint64), 10))
    assert found == every_pair(hashes, 10) and any(j >= 2796 > i for i, j in found)


def test_degenerate_inputs() -> None:
    assert hamming_pairs([], 10) == [] and hamming_pairs([7], 10) == []
    assert hamming_pairs([7, 7], -1) == []
    assert hamming_pairs([2**64 - 1, 0], 64) == [(0, 1)]
