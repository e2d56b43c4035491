"""Photos that are none of the model's genera, for outlier exposure and for measuring the open-set answer.

Layout of ``data.open_set.root``::

    <root>/not_mushroom/**/*.jpg      photos that are not mushrooms (animals, objects, people, ...)
    <root>/<anything else>/**/*.jpg   mushrooms of genera the model does not classify

so ``../shared/data/open-set`` (``not_mushroom/``, ``other_genera/<Genus>/``) works as it is. Each photo
goes to a fold by a hash of its *group* and the seed, as the known photos do: the test fold ``data.fold``
holds out one of ``data.num_folds`` folds, so that k-fold cross-validation predicts every negative once,
by the one fold model that never trained on it. Of the other folds' groups, ``val_fraction`` validate.
A not-mushroom photo is its own group, a mushroom of another genus is grouped with its genus folder, so
that the test photos of other genera are of genera never seen in training (the honest question: "a genus
I have never seen?").
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mushroom.core.images import find_images
from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.data.folder import find_undecodable
from mushroom.errors import MushroomError
from mushroom.schemas import OpenSetSettings

log = logging.getLogger(__name__)

NOT_MUSHROOM_FOLDER = "not_mushroom"
PARTS = ("train", "val", "test")


@dataclass
class NegativeSet:
    """Negative photos, their kind (index into :data:`NEGATIVE_KINDS`) and their part (train/val/test)."""

    root: Path
    paths: list[Path] = field(default_factory=list)
    kinds: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    parts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="<U5"))

    def select(self, part: str) -> tuple[list[Path], np.ndarray]:
        chosen = np.flatnonzero(self.parts == part)
        return [self.paths[i] for i in chosen], self.kinds[chosen]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            part: {
                kind: int(((self.parts == part) & (self.kinds == k)).sum())
                for k, kind in enumerate(NEGATIVE_KINDS)
            }
            for part in PARTS
        }


def negative_group(root: Path, path: Path) -> tuple[int, str]:
    """The kind of a negative photo and the group it is split with."""
    parts = path.relative_to(root).parts
    if parts[0] == NOT_MUSHROOM_FOLDER:
        return NEGATIVE_KINDS.index("not_mushroom"), "/".join(parts)
    # <root>/other_genera/<Genus>/x.jpg -> other_genera/<Genus>; <root>/<Genus>/x.jpg -> <Genus>
    group = "/".join(parts[:-1]) if len(parts) > 1 else parts[0]
    return NEGATIVE_KINDS.index("other_genus"), group


def _draw(*key: object) -> float:
    """A uniform number in [0, 1) from ``key`` alone: the same on every machine and in every run."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def negative_fold(group: str, seed: int, num_folds: int) -> int:
    """The fold a group of negatives is held out in."""
    return int(_draw(seed, group) * num_folds)


def _part(group: str, seed: int, settings: OpenSetSettings, fold: int, num_folds: int) -> str:
    if negative_fold(group, seed, num_folds) == fold:
        return "test"
    return "val" if _draw(seed, "val", group) < settings.val_fraction else "train"


def scan_negatives(settings: OpenSetSettings, seed: int, fold: int, num_folds: int) -> NegativeSet | None:
    """The negatives under ``settings.root``, parted for test fold ``fold`` of ``num_folds``, undecodable
    files left out with a warning; ``None`` when no root is configured, or it is missing and not required."""
    if not settings.root:
        return None
    root = Path(settings.root).expanduser()
    if not root.is_dir():
        if settings.required:
            raise MushroomError(
                f"data.open_set.root={root} is not a folder. Point it at photos that are none of the genera "
                f"({NOT_MUSHROOM_FOLDER}/ for non-mushrooms, other folders for other genera), or set "
                "data.open_set.root=null to train without negatives."
            )
        log.warning(
            "No open-set negatives at %s: the model will say 'not a genus I know' from its energy score "
            "alone and cannot tell 'not a mushroom'. Set data.open_set.root to add negatives.",
            root,
        )
        return None
    paths = find_images([root])
    broken = {path for path, _ in find_undecodable(paths)}
    if broken:
        log.warning(
            "Left out %d negative photos that cannot be decoded: %s", len(broken), sorted(map(str, broken))
        )
    paths = [path for path in paths if path not in broken]
    if not paths:
        raise MushroomError(f"data.open_set.root={root} holds no readable image.")
    kinds, parts = [], []
    for path in paths:
        kind, group = negative_group(root, path)
        kinds.append(kind)
        parts.append(_part(group, seed, settings, fold, num_folds))
    negatives = NegativeSet(root, paths, np.asarray(kinds, np.int64), np.asarray(parts))
    log.info("Open-set negatives %s: %s", root, negatives.counts())
    return negatives
