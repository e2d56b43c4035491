"""Test-time views: the photo as given, its centre enlarged, and the mirror image of each.

A forager's photo may hold the cap at its edge (the whole photo sees it) or small against a busy ground
(the centre, enlarged, shows its gills and pores larger). The genus probabilities are averaged over both
views (a two-crop test-time augmentation); the open-set score is the centre's alone, as it was fitted: with
the surroundings in, photos of other genera passed the open set more often (docs/how-to/cross-validation.md).
The views go through the network in one batch, so an exported graph still uses each weight once.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def centre_enlarged(images: torch.Tensor, share: float) -> torch.Tensor:
    """The centre ``share`` of each image's height and width, enlarged back to the image's size
    (bilinear): what a centre crop of ``share`` at the same input size would show."""
    height, width = images.shape[-2:]
    crop_h, crop_w = max(1, round(height * share)), max(1, round(width * share))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    centre = images[..., top : top + crop_h, left : left + crop_w]
    return F.interpolate(centre, size=(height, width), mode="bilinear", align_corners=False)


def stacked_views(images: torch.Tensor, centre: float | None, mirror: bool) -> torch.Tensor:
    """``V x N`` images stacked in one batch (view-major): the images, then (``centre``) their centre
    enlarged, then (``mirror``) the mirror image of each of those."""
    views = [images] if centre is None else [images, centre_enlarged(images, centre)]
    if mirror:
        views += [torch.flip(view, dims=[-1]) for view in views]
    return torch.cat(views) if len(views) > 1 else images


def view_count(centre: float | None, mirror: bool) -> int:
    """How many views of each image :func:`stacked_views` stacks."""
    return (1 if centre is None else 2) * (2 if mirror else 1)


def by_view(scores: torch.Tensor, centre: float | None, mirror: bool) -> torch.Tensor:
    """:func:`stacked_views`'s rows of scores as ``V x N x ...``: one slice per view."""
    return scores.unflatten(0, (view_count(centre, mirror), -1))


def centre_views(per_view: torch.Tensor, centre: float | None) -> torch.Tensor:
    """The slices of :func:`by_view` that show the centre (all of them when there is no centre view)."""
    return per_view if centre is None else per_view[1::2]
