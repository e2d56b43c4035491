"""Content hashes for exact duplicates and perceptual hashes for near-duplicates.

The perceptual hash is the classic DCT hash: shrink to 32x32 grey, take the 8x8 lowest
frequencies of its DCT, and set a bit where a coefficient is above their median. Resizing,
re-encoding and mild colour changes move few bits, so copies sit within a small Hamming distance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


def hamming_pairs(hashes: Sequence[int], max_distance: int, block: int = 1024) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, whose hashes differ in at most ``max_distance`` bits."""
    values = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), block):
        rows = values[start : start + block]
        distances = np.bitwise_count(rows[:, None] ^ values[None, :])
        for i, j in zip(*np.nonzero(distances <= max_distance), strict=True):
            a, b = start + int(i), int(j)
            if a < b:
                pairs.append((a, b))
    return pairs


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
