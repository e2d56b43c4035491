"""Training order and augmentation drawn from ``(seed, epoch)`` alone, so that a resumed run is the same run.

A run interrupted (Ctrl-C, a killed job, a preempted node) and resumed from its last checkpoint used to
restart every random stream from the seed: from the resumed epoch on it shuffled, augmented and dropped
out differently from the run that was never interrupted. Here each stream of each epoch has its own
seed, derived from the run's seed, the stream's name and the epoch: the sampler shuffles (or draws
class-balanced) with it, each image's augmentation is seeded from it and the image's index, and
:class:`EpochSeeds` re-seeds the global generators (dropout, mixing) at every epoch start.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def stream_seed(seed: int, stream: str, epoch: int) -> int:
    """A 63-bit seed for one random ``stream`` in one ``epoch`` of a run seeded with ``seed``."""
    digest = hashlib.blake2b(f"{seed}/{stream}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffled, or class-balanced with ``weights``, indices of one epoch, as ``(epoch, index)`` pairs.

    The epoch travels with each index so that the dataset (in whichever worker) seeds the image's
    augmentation from ``(seed, epoch, index)``. ``epoch_of`` says which epoch an iteration is for: the
    trainer's current epoch, which a resumed run restores before it asks for data. ``num_samples``
    (with ``weights``) draws that many indices instead of ``size``.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        epoch_of: Callable[[], int],
        weights: Sequence[float] | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.size = num_samples if num_samples is not None and weights is not None else size
        self.seed = seed
        self.epoch_of = epoch_of
        self.weights = torch.as_tensor(weights, dtype=torch.float64) if weights is not None else None

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch_of()
        generator = torch.Generator().manual_seed(stream_seed(self.seed, "order", epoch))
        if self.weights is None:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        for index in order.tolist():
            yield epoch, index


class EpochLoader(DataLoader):
    """A DataLoader whose iterator starts at the first batch asked for, not when ``iter()`` is called.

    Lightning calls ``iter()`` on the training loader while it sets up, before a resumed run has restored
    its epoch, and keeps that iterator for the first epoch it trains. With loader workers the iterator
    draws its first batches' indices at once, so the :class:`EpochSampler` would read epoch 0 and the
    resumed epoch would train on epoch 0's order and augmentation; without workers the draw waits for the
    first batch, as it does here with any number of workers.
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # an iterator, not torch's own class
        return _StartsOnFirstBatch(super().__iter__)


class _StartsOnFirstBatch:
    def __init__(self, start: Callable[[], Iterator[Any]]) -> None:
        self._start = start
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> _StartsOnFirstBatch:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)


class EpochSeeds(L.Callback):
    """Re-seed PyTorch's, NumPy's and Python's global generators from ``(seed, epoch)`` at every epoch
    start, so that dropout and batch mixing do not depend on how many epochs this process has run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_seed = stream_seed(self.seed, f"global/rank{trainer.global_rank}", trainer.current_epoch)
        torch.manual_seed(epoch_seed)  # every device's generator too
        np.random.seed(epoch_seed % 2**32)
        random.seed(epoch_seed)
