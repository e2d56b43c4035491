"""Content hashes for exact duplicates and perceptual hashes for near-duplicates.

The perceptual hash is the classic DCT hash: shrink to 32x32 grey, take the 8x8 lowest
frequencies of its DCT, and set a bit where a coefficient is above their median. Resizing,
re-encoding and mild colour changes move few bits, so copies sit within a small Hamming distance.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(files: Sequence[tuple[Path, str | None]]) -> str:
    """Changes when a file is added, removed, resized or touched: tells when what was computed from the
    files (an audit, drift's reference statistics) is stale."""
    digest = hashlib.sha256()
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit DCT hash of an ``H x W x 3`` uint8 image."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    # The DC term (overall brightness) says nothing about content: leave it out of the median.
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def hamming_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, sorted, whose 64-bit hashes differ in at most ``max_distance``
    bits.

    Exact, and far cheaper than comparing every pair when the distance is small against 64 bits: the
    hashes are cut into bands, a pair within the distance is close on at least one band
    (:func:`band_plan`), and only the pairs that a band's index brings together are compared in full.
    When the bands would bring together about as many pairs as there are (a large distance, few
    hashes), every pair is compared instead.
    """
    values = np.asarray(hashes, dtype=np.uint64)
    if max_distance < 0 or len(values) < 2:
        return []
    plan = band_plan(len(values), max_distance)
    found = _all_pairs(values, max_distance) if plan is None else _band_pairs(values, max_distance, plan)
    if not found:
        return []
    first = np.concatenate([pair[0] for pair in found])
    second = np.concatenate([pair[1] for pair in found])
    order = np.lexsort((second, first))
    return list(zip(first[order].tolist(), second[order].tolist(), strict=True))


@dataclass(frozen=True)
class Band:
    """Bits ``shift .. shift + width - 1`` of a hash; hashes within ``radius`` bits there are neighbours."""

    shift: int
    width: int
    radius: int

    def of(self, values: np.ndarray) -> np.ndarray:
        return ((values >> np.uint64(self.shift)) & np.uint64((1 << self.width) - 1)).astype(np.int64)

    def distance(self, xor: np.ndarray) -> np.ndarray:
        """Bits that differ within the band, given the hashes' XOR."""
        return np.bitwise_count(self.of(xor))

    def flips(self) -> list[int]:
        """Every XOR mask of at most ``radius`` bits within the band: a key's neighbours are key ^ mask."""
        return [
            sum(1 << bit for bit in bits)
            for k in range(self.radius + 1)
            for bits in itertools.combinations(range(self.width), k)
        ]

    def probes(self) -> int:
        return sum(math.comb(self.width, k) for k in range(self.radius + 1))


# Relative costs of the band search, per hash per probe and per pair brought together, against one pair
# compared by the all-pairs search (numpy, measured with benchmarks/near_duplicates.py on 2 cores).
_PROBE_COST = 5.5
_CANDIDATE_COST = 3.5


def band_plan(count: int, max_distance: int) -> list[Band] | None:
    """The bands that make the search over ``count`` hashes cheapest, or None when comparing every pair
    is cheaper.

    Give each of ``m`` bands a radius (or leave it out) so that the radii plus one sum to more than
    ``max_distance``: two hashes that are further apart than its radius on every band used differ in
    more than ``max_distance`` bits, so every pair within the distance is found on some band. The cost
    of a plan is the probing of each hash's neighbours on every band plus the pairs brought together
    (``count**2 / 2**width`` per probe, as with evenly spread hashes).
    """
    best_cost, best = count * (count - 1) / 2, None
    for m in range(3, 9):
        widths = [64 // m + (1 if b < 64 % m else 0) for b in range(m)]
        units = max_distance + 1  # radius + 1 of the bands used, summed
        shares = [units // m + (1 if b < units % m else 0) for b in range(m)]
        if any(share > width for share, width in zip(shares, widths, strict=True)):
            continue
        bands, shift = [], 0
        for width, share in zip(widths, shares, strict=True):
            if share > 0:
                bands.append(Band(shift, width, share - 1))
            shift += width
        cost = sum(
            band.probes() * (_PROBE_COST * count + _CANDIDATE_COST * count * count / 2**band.width)
            for band in bands
        )
        if cost < best_cost:
            best_cost, best = cost, bands
    return best


Pairs = list[tuple[np.ndarray, np.ndarray]]

# Pairs brought together at a time: bounds the memory of a band search over clustered hashes.
_CHUNK = 1 << 22


def _band_pairs(values: np.ndarray, max_distance: int, bands: list[Band]) -> Pairs:
    found: Pairs = []
    for b, band in enumerate(bands):
        keys = band.of(values)
        members = np.argsort(keys, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=1 << band.width))])
        for flip in band.flips():
            neighbour_keys = keys ^ flip
            first = starts[neighbour_keys]
            sizes = starts[neighbour_keys + 1] - first
            (queries,) = np.nonzero(sizes)
            brought_together = int(sizes.sum())
            if not brought_together:
                continue
            for q in np.array_split(queries, -(-brought_together // _CHUNK)):
                n = sizes[q]
                offsets = np.cumsum(n) - n
                i = np.repeat(q, n)
                j = members[np.arange(int(n.sum())) - np.repeat(offsets - first[q], n)]
                keep = i < j  # each unordered pair once: from its smaller index
                i, j = i[keep], j[keep]
                xor = values[i] ^ values[j]
                keep = np.bitwise_count(xor) <= max_distance
                for earlier in bands[:b]:  # found there already
                    keep &= earlier.distance(xor) > earlier.radius
                found.append((i[keep], j[keep]))
    return found


def _all_pairs(values: np.ndarray, max_distance: int) -> Pairs:
    found: Pairs = []
    block = max(1, (1 << 23) // len(values))
    for start in range(0, len(values), block):
        rows = values[start : start + block]
        distances = np.bitwise_count(rows[:, None] ^ values[None, start:])
        i, j = np.nonzero(distances <= max_distance)
        keep = j > i
        found.append((start + i[keep], start + j[keep]))
    return found


def connected_groups(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Group ids (0..k-1, in order of first member) of the graph on ``n`` nodes with edges ``pairs``."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    roots = [find(i) for i in range(n)]
    ids: dict[int, int] = {}
    return np.asarray([ids.setdefault(root, len(ids)) for root in roots], dtype=np.int64)
