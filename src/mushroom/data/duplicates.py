"""Exact and near copies of a photo grouped together, so that a split keeps them on one side: copies by
content hash, near copies by perceptual hash within a distance (:func:`mushroom.data.hashing.hamming_pairs`),
and the groups they form transitively."""

from __future__ import annotations

import logging

from mushroom.data.audit_report import AuditReport, DuplicateGroup, ImageRecord
from mushroom.data.hashing import (
    connected_groups,
    hamming_pairs,
)

log = logging.getLogger(__name__)


def group_duplicates(report: AuditReport, near_duplicate_distance: int) -> None:
    """Give every image a group id: exact copies and near copies (transitively) share one."""
    images = report.images
    by_content: dict[str, int] = {}
    pairs = []
    for i, image in enumerate(images):
        first = by_content.setdefault(image.sha256, i)
        if first != i:
            pairs.append((first, i))
    hashes = [int(image.phash, 16) for image in images]
    pairs += hamming_pairs(hashes, near_duplicate_distance)
    groups = connected_groups(len(images), pairs)
    for image, group in zip(images, groups, strict=True):
        image.group = int(group)
    members: dict[int, list[ImageRecord]] = {}
    for image in images:
        members.setdefault(image.group, []).append(image)
    report.duplicate_groups = [
        DuplicateGroup(
            id=group,
            kind="exact" if len({m.sha256 for m in found}) == 1 else "near",
            paths=[m.path for m in found],
            labels=[m.label for m in found],
        )
        for group, found in sorted(members.items())
        if len(found) > 1
    ]
