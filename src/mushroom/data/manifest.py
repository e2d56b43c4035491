"""The manifest: one CSV row per usable image, with its label, duplicate group, fold and split.

Training reads the manifest instead of listing folders, so the split is a file: versioned with the
data, identical on every machine, and never split across a duplicate group.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mushroom.core.safety import DEADLY_LABEL, check_safety_policy
from mushroom.data.audit_report import AuditReport, ImageRecord
from mushroom.data.cache import cached_path
from mushroom.data.folder import ImageFolderIndex
from mushroom.data.splits import (
    grouped_partitions,
    source_groups,
    split_from_partitions,
    validate_split_settings,
)
from mushroom.errors import MushroomError
from mushroom.schemas import PrepareSettings, SplitSettings

log = logging.getLogger(__name__)

COLUMNS = ("path", "label", "group", "fold", "val_part", "split", "width", "height", "sha256", "phash")
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Manifest:
    rows: list[dict]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list:
        return [row[name] for row in self.rows]

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.column("label")))

    def index(
        self, source_dir: Path, class_names: Sequence[str] | None = None, cache_dir: Path | None = None
    ) -> ImageFolderIndex:
        """The photos to read (from the resized cache when given) with their labels, in ``class_names``'
        order (e.g. a checkpoint's, of which the manifest may hold a subset) or sorted."""
        names = list(class_names) if class_names is not None else self.class_names
        relative = self.column("path")
        paths = [cached_path(cache_dir, path) if cache_dir else source_dir / path for path in relative]
        labels = label_indices(self.column("label"), names)
        return ImageFolderIndex(root=source_dir, class_names=names, paths=paths, labels=labels)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise MushroomError(
                f"Manifest {path} does not exist. Build it with `python -m mushroom.data.prepare data=...` "
                "(or train with data.prepare.enabled=true)."
            )
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise MushroomError(
                    f"{path} is not a mushroom manifest: columns {sorted(missing)} are missing."
                )
            rows = list(reader)
        for row in rows:
            for name in ("group", "fold", "val_part", "width", "height"):
                row[name] = int(row[name])
        return cls(rows)


def trim_classes(report: AuditReport, max_per_class: int | None, seed: int) -> set[int]:
    """Duplicate groups to drop so that no class keeps more than ``max_per_class`` images.

    Whole groups go, picked at random (seeded); classes at or under the cap keep every image.
    """
    if not max_per_class:
        return set()
    rng = np.random.default_rng(seed)
    groups_of: dict[str, dict[int, int]] = {}
    for image in report.images:
        sizes = groups_of.setdefault(image.label, {})
        sizes[image.group] = sizes.get(image.group, 0) + 1
    dropped: set[int] = set()
    for label, sizes in sorted(groups_of.items()):
        total = sum(sizes.values())
        for group in rng.permutation(sorted(sizes)):
            if total <= max_per_class:
                break
            dropped.add(int(group))
            total -= sizes[int(group)]
        if dropped:
            log.info("Trimmed %s to %d images (data.prepare.max_per_class=%d)", label, total, max_per_class)
    return dropped


def build_manifest(report: AuditReport, split: SplitSettings | None, settings: PrepareSettings) -> Manifest:
    """Rows for every usable image, split leak-free (see :func:`grouped_partitions`); with
    ``settings.split_by_source``, whole source families too (:func:`source_groups`). ``split=None``:
    no partition, every row is in fold 0's test split (a folder a trained model is evaluated on).

    ``settings.safety_conflicts``: what to do with photos whose label the safety table contradicts
    (:attr:`AuditReport.safety_conflicts`): ``drop`` them, ``keep`` them as labelled, or ``relabel``
    them as the most dangerous class.
    """
    drop_conflicting, max_per_class = settings.drop_conflicting, settings.max_per_class
    if split is not None:
        validate_split_settings(split.num_folds, split.fold, split.val_fraction)
    conflicting = {group.id for group in report.conflicting_groups()} if drop_conflicting else set()
    if conflicting:
        n = sum(len(g.paths) for g in report.conflicting_groups())
        top_pairs = list(report.conflicting_label_pairs().items())[:5]
        pairs = ", ".join(f"{pair}: {count}" for pair, count in top_pairs)
        log.warning(
            "Dropping %d images in %d duplicate groups with conflicting labels (groups per label pair: %s)",
            n,
            len(conflicting),
            pairs,
        )
    dropped = conflicting | trim_classes(report, max_per_class, split.seed if split else 0)
    kept = resolve_safety_conflicts(report, settings.safety_conflicts)
    images = [image for image in kept if image.group not in dropped]
    if not images:
        raise MushroomError("No images left for the manifest after dropping conflicting duplicates.")
    class_names = sorted({image.label for image in images})
    _refuse_emptied_classes(report, class_names)
    labels = np.asarray([class_names.index(image.label) for image in images])
    folds, val_parts = _partitions(images, labels, split, settings)
    chosen = split_from_partitions(folds, val_parts, split.fold if split else 0)
    split_of = np.empty(len(images), dtype=object)
    for name in SPLIT_NAMES:
        split_of[getattr(chosen, name)] = name
    rows = [
        {
            "path": image.path,
            "label": image.label,
            "group": image.group,
            "fold": int(folds[i]),
            "val_part": int(val_parts[i]),
            "split": split_of[i],
            "width": image.width,
            "height": image.height,
            "sha256": image.sha256,
            "phash": image.phash,
        }
        for i, image in enumerate(images)
    ]
    return Manifest(rows)


def _partitions(
    images: Sequence[ImageRecord], labels: np.ndarray, split: SplitSettings | None, settings: PrepareSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Test fold and validation part of each image (:func:`grouped_partitions`); all in fold 0, never
    validation, without ``split``."""
    if split is None:
        return np.zeros(len(images), dtype=np.int64), np.full(len(images), -1, dtype=np.int64)
    groups = np.asarray([image.group for image in images])
    by_source = settings.split_by_source
    validate_by_source = by_source if settings.validate_by_source is None else settings.validate_by_source
    paths = [image.path for image in images]

    @functools.cache  # test folds and validation usually keep families at the same share
    def families(max_share: float) -> np.ndarray:
        return source_groups(labels, groups.tolist(), paths, max_share)

    val_share = settings.val_source_max_share or settings.source_max_share
    return grouped_partitions(
        labels,
        families(settings.source_max_share) if by_source else groups,
        split.num_folds,
        split.val_fraction,
        split.seed,
        val_groups=families(val_share) if validate_by_source else groups,
        val_by_fold=settings.val_by_fold,
    )


def resolve_safety_conflicts(report: AuditReport, policy: str) -> list[ImageRecord]:
    """The report's images with ``policy`` applied to its safety conflicts, and a log line saying so."""
    check_safety_policy(policy)
    conflicts = {conflict.path: conflict for conflict in report.safety_conflicts}
    if not conflicts:
        return list(report.images)
    by_genus = dict(Counter(conflict.genus for conflict in conflicts.values()).most_common())
    if policy == "keep":
        log.warning(
            "Keeping %d photos of genera with deadly species under an edible label %s "
            "(data.prepare.safety_conflicts=keep)",
            len(conflicts),
            by_genus,
        )
        return list(report.images)
    if policy == "relabel":
        log.warning(
            "Relabelled %d photos %s as %s (data.prepare.safety_conflicts=relabel)",
            len(conflicts),
            by_genus,
            DEADLY_LABEL,
        )
        relabel = {path: DEADLY_LABEL for path in conflicts}
        return [replace(image, label=relabel.get(image.path, image.label)) for image in report.images]
    log.warning(
        "Left out %d photos of genera with deadly species that carry an edible label %s "
        "(data.prepare.safety_conflicts=drop; the audit report lists them)",
        len(conflicts),
        by_genus,
    )
    return [image for image in report.images if image.path not in conflicts]


def _refuse_emptied_classes(report: AuditReport, class_names: Sequence[str]) -> None:
    """A class folder that is empty, or that the audit emptied (every file undecodable, or in conflicting
    duplicates), must not silently disappear from the model: the user expects to train on every folder
    they gave."""
    if report.empty_classes:
        raise MushroomError(
            f"Class folder(s) {', '.join(report.empty_classes)} in {report.root} hold no images. Add images "
            "(one sub-folder per class, e.g. Amanita/0001.jpg) or remove the folder(s)."
        )
    labels = {image.label for image in report.images}
    labels |= {problem.label for problem in report.excluded if problem.label is not None}
    emptied = sorted(labels - set(class_names))
    if emptied:
        raise MushroomError(
            f"Class(es) {', '.join(emptied)} in {report.root} have no usable image left: every file "
            "was excluded by the audit (undecodable, too small, or a duplicate with another label). "
            "See the audit report for why, then replace the files or remove the folder(s)."
        )


def label_indices(labels: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Map label names to indices in ``class_names``; a label outside them is a clear error."""
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise MushroomError(
            f"The data holds classes {', '.join(unknown)} that the model does not know (its classes: "
            f"{', '.join(class_names)}). Remove or rename those folders, or train a model on these classes."
        )
    return np.asarray([list(class_names).index(label) for label in labels], dtype=np.int64)
