"""Give the negatives the known photos' resolution, so that sharpness cannot tell them apart.

The shared genus photos are small (median shorter side 194 px) and are enlarged to the training size; the
negatives are larger (other genera 288-512 px, median 512) and are shrunk to it. Trained on them as they
are, the open set learns "sharp photo: not a genus I know" as well as what the photo shows
(``benchmarks/sharpness.py`` measures it), which counts against the sharp photos users take of known genera.
Shrinking each negative, at every draw, to the shorter side of a known training photo drawn at random removes
that cue without changing what the photo shows. Off by default: on the shared photos it separates better at
one resolution but answers more of the large other-genus photos (docs/how-to/open-set.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mushroom.data.cache import shrink
from mushroom.data.sampling import stream_seed

__all__ = ["ResolutionMatch"]


@dataclass(frozen=True)
class ResolutionMatch:
    """Which items of a dataset are shrunk (``matched``), and the shorter sides they are shrunk to, drawn
    from ``sides`` (the known training photos' shorter sides as they are read, after any cache)."""

    sides: np.ndarray
    matched: np.ndarray

    @classmethod
    def of(cls, sides: Sequence[int] | np.ndarray, matched: Sequence[bool] | np.ndarray) -> ResolutionMatch:
        sides, matched = np.asarray(sides, dtype=np.int64), np.asarray(matched, dtype=bool)
        if not len(sides) or sides.min() < 1:
            raise ValueError("ResolutionMatch needs at least one photo side, each at least 1 px")
        return cls(sides, matched)

    def side(self, seed: int, index: int, epoch: int) -> int:
        """The shorter side item ``index`` is shrunk to in ``epoch``: the same whichever worker reads it."""
        rng = np.random.default_rng(stream_seed(seed, f"resolution/{index}", epoch))
        return int(self.sides[rng.integers(len(self.sides))])

    def __call__(self, image: np.ndarray, seed: int, index: int, epoch: int) -> np.ndarray:
        """``image`` shrunk if item ``index`` is matched and larger than the side drawn; else as it is."""
        if not self.matched[index]:
            return image
        return shrink(image, self.side(seed, index, epoch))
