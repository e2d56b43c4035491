"""A map-style dataset over image paths: decode, augment, return ``(tensor, label)`` (and a teacher's soft
targets when it has them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from mushroom.core.images import load_rgb, load_rgb_opencv
from mushroom.data.resolution import ResolutionMatch
from mushroom.data.sampling import stream_seed
from mushroom.errors import MushroomError


class ImageDataset(Dataset):
    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        transform: Callable[..., dict],
        decode_min_side: int | None = None,
        decoder: str = "pil",
        seed: int | None = None,
        resolution: ResolutionMatch | None = None,
        soft_targets: np.ndarray | None = None,
    ) -> None:
        """``resolution``: shrink some items (the negatives) before the transform, see
        :mod:`mushroom.data.resolution`. ``soft_targets`` (one row per item, :mod:`mushroom.data.teacher`):
        each item is ``(tensor, label, row)``."""
        if soft_targets is not None and len(soft_targets) != len(paths):
            raise ValueError(f"{len(soft_targets)} rows of soft targets for {len(paths)} images")
        self.soft_targets = (
            None if soft_targets is None else torch.as_tensor(soft_targets, dtype=torch.float32)
        )
        self.paths = list(paths)
        self.resolution = resolution
        self.seed = seed
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.decode_min_side = decode_min_side
        if decoder not in ("pil", "opencv"):
            raise MushroomError(f"Unknown image decoder {decoder!r}: use 'pil' or 'opencv'.")
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(
        self, key: int | tuple[int, int]
    ) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, torch.Tensor]:
        """The image and label at ``key``: an index, or ``(epoch, index)`` from
        :class:`~mushroom.data.sampling.EpochSampler`, which seeds this image's augmentation from
        ``(seed, epoch, index)`` so that it does not depend on the worker, the batch or an interruption."""
        if isinstance(key, tuple):
            epoch, index = key
            set_seed = getattr(self.transform, "set_random_seed", None)
            if callable(set_seed) and self.seed is not None:
                set_seed(stream_seed(self.seed, f"augment/{index}", epoch) % 2**32)
        else:
            epoch, index = 0, key
        image = self.transform(image=self.decoded(index, epoch))["image"]
        if self.soft_targets is not None:
            return image, int(self.labels[index]), self.soft_targets[index]
        return image, int(self.labels[index])

    def decoded(self, index: int, epoch: int = 0) -> np.ndarray:
        """Item ``index`` as the transform receives it in ``epoch``: decoded, and shrunk if it is matched."""
        path = self.paths[index]
        try:
            if self.decoder == "opencv":
                image = load_rgb_opencv(path)
            else:
                image = load_rgb(path, min_side=self.decode_min_side)
        except Exception as error:
            raise MushroomError(
                f"Could not decode {path} ({type(error).__name__}: {error}). It was readable when the "
                "dataset was indexed; was it changed or removed since?"
            ) from error
        if self.resolution is not None:
            image = self.resolution(image, self.seed or 0, index, epoch)
        return image


def seed_worker_transform(worker_id: int) -> None:
    """Give each DataLoader worker its own augmentation stream.

    Every worker receives a copy of the dataset, and so of the transform's random state: without a
    re-seed, all workers would apply the same augmentations in the same order. ``worker_info.seed``
    differs per worker and follows ``torch.manual_seed`` (``seed_everything``), so runs stay reproducible.
    """
    info = get_worker_info()
    if info is None:
        return
    set_seed = getattr(getattr(info.dataset, "transform", None), "set_random_seed", None)
    if callable(set_seed):
        set_seed(info.seed % 2**32)
