"""Soft targets from a frozen teacher (``data.teacher``), for distillation (``model.distill_weight``).

The teacher is a pretrained network we do not fine-tune (e.g. DINOv2 ViT-S/14): a logistic-regression probe
on its frozen features gives each training photo a probability over the model's outputs (the genera, then
one per kind of negative). Each photo's row comes from a probe fitted on the *other* training photos
(cross-fitting, duplicate groups kept together): a probe's answer on a photo it learnt from is nearly its
label, and would teach nothing that the label does not. Features are computed once per photo and cached.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mushroom.errors import MushroomError
from mushroom.schemas import TeacherSettings

log = logging.getLogger(__name__)


def _photo_key(path: Path) -> str:
    """A photo's cache key: its path, size and modification time (a changed photo is computed again)."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def frozen_features(
    model_name: str,
    paths: Sequence[Path],
    image_size: int,
    *,
    pretrained: bool,
    cache: Path | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """The teacher's frozen features of each photo, the photo and its mirror image averaged: class token and
    mean patch token for a ViT, pooled maps for a CNN. ``cache`` (an ``.npz``) keeps them between runs;
    only photos it lacks go through the network."""
    keys = [_photo_key(Path(p)) for p in paths]
    stored: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as found:
            stored = dict(zip(found["keys"].tolist(), found["features"], strict=True))
    missing = sorted({i for i, key in enumerate(keys) if key not in stored})
    if missing:
        log.info(
            "Teacher %s: features of %d photos (%d cached)",
            model_name,
            len(missing),
            len(keys) - len(missing),
        )
        computed = _features(
            model_name, [Path(paths[i]) for i in missing], image_size, pretrained, batch_size
        )
        stored.update({keys[i]: row for i, row in zip(missing, computed, strict=True)})
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
            np.savez(partial, keys=np.array(list(stored)), features=np.stack(list(stored.values())))
            partial.replace(cache)  # whole or not at all: a killed run leaves the old cache
    return np.stack([stored[key] for key in keys])


def _features(
    model_name: str, paths: list[Path], image_size: int, pretrained: bool, batch_size: int
) -> np.ndarray:
    import timm
    import torch

    from mushroom.core.images import load_rgb
    from mushroom.core.preprocessing import Preprocessing, eval_preprocess

    # A ViT's position grid follows the input size.
    extra: dict[str, Any] = {"img_size": image_size} if "vit" in model_name else {}
    try:
        net = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **extra).eval()
    except (RuntimeError, OSError) as error:  # timm's "Unknown model", or weights it could not fetch
        raise MushroomError(
            f"data.teacher.name={model_name}: timm could not build it ({error}). Name a timm model with "
            "pretrained weights (e.g. vit_small_patch14_dinov2.lvd142m); offline, point HF_HUB_CACHE at a "
            "cache that holds them."
        ) from error
    config = timm.data.resolve_data_config({}, model=net)
    preprocessing = Preprocessing(image_size=image_size, crop_pct=1.0, mean=config["mean"], std=config["std"])
    rows = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = torch.from_numpy(
                np.stack(
                    [eval_preprocess(load_rgb(p), preprocessing) for p in paths[start : start + batch_size]]
                )
            )
            views = [_pooled(net, view) for view in (batch, batch.flip(3))]
            rows.append(((views[0] + views[1]) / 2).numpy())
    return np.concatenate(rows).astype(np.float32)


def _pooled(net: Any, images: Any) -> Any:
    """One vector per photo: class token and mean patch token (tokens), or the mean of the maps."""
    import torch

    maps = net.forward_features(images)
    if maps.ndim == 3:
        prefix = getattr(net, "num_prefix_tokens", 1)
        return torch.cat([maps[:, 0], maps[:, prefix:].mean(1)], 1)
    return maps.mean((2, 3))


def fit_probe(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray, num_outputs: int, strength: float
) -> Callable[[np.ndarray], np.ndarray]:
    """A probe on frozen features: standardised features, an L2 logistic regression of inverse strength
    ``strength``, each photo weighted by ``weights`` (normalised to mean 1). Returns a function from features
    to probabilities over ``num_outputs`` columns (0 for an output it never saw)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    probe = LogisticRegression(C=strength, max_iter=3000)
    probe.fit(scaler.transform(features), labels, sample_weight=weights / weights.mean())

    def probabilities(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), num_outputs))
        out[:, probe.classes_] = probe.predict_proba(scaler.transform(rows))
        return out

    return probabilities


def cross_fitted_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str],
    num_outputs: int,
    *,
    folds: int,
    strength: float,
    seed: int = 0,
) -> np.ndarray:
    """Each photo's probabilities over ``num_outputs`` from a probe (:func:`fit_probe`) fitted on the photos
    of the other ``folds - 1`` parts (stratified by label, ``groups`` kept whole), each class weighted by
    count ** -0.5 (halfway to even, as the recipes sample). An output no probe saw gets probability 0."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_outputs).astype(np.float64)
    parts = min(folds, int(counts[counts > 0].min()))
    if parts < 2:
        raise MushroomError(
            f"The teacher's probe needs two training photos of each output to cross-fit; one output has "
            f"{parts}. Add photos or set data.teacher.name=null."
        )
    splitter = StratifiedGroupKFold(n_splits=parts, shuffle=True, random_state=seed)
    out = np.zeros((len(labels), num_outputs))
    for fit_rows, predict_rows in splitter.split(features, labels, groups=np.asarray(groups)):
        weights = counts[labels[fit_rows]] ** -0.5
        probe = fit_probe(features[fit_rows], labels[fit_rows], weights, num_outputs, strength)
        out[predict_rows] = probe(features[predict_rows])
    return out


def teacher_targets(
    settings: TeacherSettings,
    paths: Sequence[Path],
    labels: np.ndarray,
    groups: Sequence[str],
    num_outputs: int,
    seed: int,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Cross-fitted soft targets (a row per photo, summing to 1) from ``settings.name``'s frozen features."""
    assert settings.name, "teacher_targets needs data.teacher.name"
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{settings.name.replace('/', '_')}-{settings.input_size}px.npz"
    size, pretrained = settings.input_size, settings.pretrained
    feats = frozen_features(settings.name, paths, size, pretrained=pretrained, cache=cache)
    probs = cross_fitted_probabilities(
        feats, labels, groups, num_outputs, folds=settings.folds, strength=settings.strength, seed=seed
    )
    agree = float((probs.argmax(1) == np.asarray(labels)).mean())
    log.info(
        "Teacher %s: its cross-fitted answer is the label on %.1f%% of %d photos",
        settings.name,
        100 * agree,
        len(labels),
    )
    return probs.astype(np.float32)
