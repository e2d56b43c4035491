"""Mixup and CutMix: train on blends of two images whose target is the same blend of their labels.

Mixup (Zhang et al., 2018) blends whole images; CutMix (Yun et al., 2019) pastes a box of one image
into another and weighs the labels by the box's area. Both keep a small training set from being
memorised. Each batch is paired with itself reversed, so no second batch has to be loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Mixing:
    """``*_alpha``: the Beta(alpha, alpha) the blend share is drawn from, 0 = off; ``prob``: batches mixed."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def __call__(
        self, images: torch.Tensor, targets: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mixed images and soft targets (rows sum to 1); unmixed batches get one-hot targets."""
        one_hot = F.one_hot(targets, num_classes).to(images.dtype)
        if not self.enabled or len(images) < 2 or float(torch.rand(())) >= self.prob:
            return images, one_hot
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha <= 0 or float(torch.rand(())) < self.switch_prob
        )
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = images.flip(0)
        if use_cutmix:
            images, lam = paste_box(images, partner, lam)
        else:
            images = lam * images + (1 - lam) * partner
        return images, lam * one_hot + (1 - lam) * one_hot.flip(0)


def paste_box(images: torch.Tensor, partner: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """Paste a box covering ``1 - lam`` of the area of ``partner`` into ``images``; return the kept share."""
    height, width = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = round(height * cut), round(width * cut)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    # The box may be clipped at the border: weigh the labels by the area actually pasted.
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, kept
