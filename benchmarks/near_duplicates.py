"""Seconds for the audit's near-duplicate search (``mushroom.data.hashing.hamming_pairs``) over random
64-bit perceptual hashes and over sets where many are near copies, against comparing every pair.

    python benchmarks/near_duplicates.py --sizes 100000 1000000 --compare-up-to 100000

The band search must give exactly the all-pairs search's pairs: checked here on every size up to
``--compare-up-to`` (the all-pairs search at a million hashes would take most of an hour).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from mushroom.data.hashing import _all_pairs, band_plan, hamming_pairs

log = logging.getLogger("near_duplicates")


def random_hashes(count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2**64, size=count, dtype=np.uint64)


def with_near_copies(
    count: int, rng: np.random.Generator, share: float = 0.3, max_flips: int = 12
) -> np.ndarray:
    """Random hashes where ``share`` of them are copies of others with 0..``max_flips`` bits flipped, as
    resized, re-encoded and cropped photos are."""
    hashes = random_hashes(count, rng)
    copies = rng.choice(count, size=int(count * share), replace=False)
    originals = rng.integers(0, count, size=len(copies))
    flipped = hashes[originals].copy()
    flips = rng.integers(0, max_flips + 1, size=len(copies))
    for round_ in range(max_flips):
        bits = rng.integers(0, 64, size=len(copies)).astype(np.uint64)
        flipped[flips > round_] ^= np.uint64(1) << bits[flips > round_]
    hashes[copies] = flipped
    return hashes


def previous_search(values: np.ndarray, max_distance: int, block: int = 1024) -> list[tuple[int, int]]:
    """The search before the band index: every row against every hash, 1,024 rows at a time."""
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), block):
        distances = np.bitwise_count(values[start : start + block, None] ^ values[None, :])
        for i, j in zip(*np.nonzero(distances <= max_distance), strict=True):
            if start + int(i) < int(j):
                pairs.append((start + int(i), int(j)))
    return pairs


def timed(function, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args)
    return result, round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--distance", type=int, default=10, help="data.prepare.near_duplicate_distance")
    parser.add_argument("--compare-up-to", type=int, default=100_000)
    parser.add_argument("--previous-up-to", type=int, default=100_000, help="time the old search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows = []
    for count in args.sizes:
        for kind, make in (("random", random_hashes), ("near_copies", with_near_copies)):
            values = make(count, np.random.default_rng(args.seed))
            pairs, seconds = timed(hamming_pairs, values.tolist(), args.distance)
            plan = band_plan(count, args.distance)
            row: dict[str, object] = {
                "hashes": count,
                "kind": kind,
                "distance": args.distance,
                "bands": [(band.width, band.radius) for band in plan] if plan else "all pairs",
                "pairs": len(pairs),
                "band_search_s": seconds,
            }
            if count <= args.compare_up_to:
                found, row["all_pairs_s"] = timed(_all_pairs, values, args.distance)
                every = sorted((int(i), int(j)) for a, b in found for i, j in zip(a, b, strict=True))
                row["same_pairs_as_all_pairs"] = every == pairs
            if count <= args.previous_up_to and kind == "random":
                _, row["previous_search_s"] = timed(previous_search, values, args.distance)
            log.info(json.dumps(row))
            rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
