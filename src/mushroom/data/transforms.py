"""Albumentations pipelines built from plain config values.

Train: random resized crop, flips, rotation, another light's colour, colour jitter, grey and blurred
photos, erased rectangles. Eval: resize the shorter side to ``image_size / crop_pct`` and take the centre
crop, as timm evaluates ImageNet models.
Both end with the backbone's own normalisation (mean/std of its pretrained config).
"""

from __future__ import annotations

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from mushroom.core.preprocessing import Preprocessing
from mushroom.schemas import Augmentation

__all__ = ["eval_transform", "train_transform"]


def train_transform(pre: Preprocessing, aug: Augmentation, seed: int | None = None) -> A.Compose:
    """Albumentations keeps its own random state: ``seed`` makes the augmentation stream reproducible."""
    size = (pre.image_size, pre.image_size)
    steps: list = [
        A.RandomResizedCrop(
            size=size,
            scale=tuple(aug.scale),
            ratio=tuple(aug.ratio),
            interpolation=cv2.INTER_AREA,
        )
    ]
    if aug.hflip > 0:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip > 0:
        steps.append(A.VerticalFlip(p=aug.vflip))
    if aug.rotate > 0:
        steps.append(A.Rotate(limit=aug.rotate, border_mode=cv2.BORDER_REFLECT_101, p=0.5))
    if aug.illuminant > 0:  # the light first, then the camera's brightness, contrast and saturation
        steps.append(A.PlanckianJitter(mode="blackbody", p=aug.illuminant))
    if aug.color_jitter_p > 0:
        steps.append(
            A.ColorJitter(
                brightness=aug.brightness,
                contrast=aug.contrast,
                saturation=aug.saturation,
                hue=aug.hue,
                p=aug.color_jitter_p,
            )
        )
    if aug.grayscale > 0:
        steps.append(A.ToGray(p=aug.grayscale))
    if aug.blur > 0:
        steps.append(A.GaussianBlur(sigma_limit=(0.5, 2.0), p=aug.blur))
    if aug.erase > 0:
        steps.append(A.Erasing(scale=(0.02, 1 / 3), ratio=(0.3, 3.3), fill="random", p=aug.erase))
    steps += [A.Normalize(mean=tuple(pre.mean), std=tuple(pre.std)), ToTensorV2()]
    return A.Compose(steps, seed=seed)


def eval_transform(pre: Preprocessing) -> A.Compose:
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=pre.resize_size, interpolation=cv2.INTER_AREA),
            A.CenterCrop(height=pre.image_size, width=pre.image_size),
            A.Normalize(mean=tuple(pre.mean), std=tuple(pre.std)),
            ToTensorV2(),
        ]
    )
