"""Have the photos the service sees moved away from the training photos?

    python -m mushroom.drift model_path=model.onnx reference_dir=DIR [recorded=input_stats.jsonl]

The service appends each answered photo's statistics (brightness, contrast, colour, size, the model's
confidence) to a JSON-lines file. This compares each statistic with the same statistic of the
training photos: a two-sample Kolmogorov-Smirnov test says whether the difference is real, the
population stability index (PSI) says whether it is large, and the mean shift in reference standard
deviations says which way it went. Torch-free: it runs where the service runs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from mushroom.core.images import decode_opened, find_images, sample_evenly
from mushroom.core.onnx_model import OnnxClassifier
from mushroom.core.preprocessing import resize_and_crop
from mushroom.core.stats import FEATURES, image_stats
from mushroom.data.hashing import file_sha256, folder_fingerprint
from mushroom.errors import MushroomError
from mushroom.runtime import checked_command_line, exit_on_user_error

log = logging.getLogger(__name__)
MIN_RECORDED = 30


def ks_test(reference: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (Stephens' correction)."""
    reference, live = np.sort(reference), np.sort(live)
    values = np.concatenate([reference, live])
    cdf_reference = np.searchsorted(reference, values, side="right") / len(reference)
    cdf_live = np.searchsorted(live, values, side="right") / len(live)
    statistic = float(np.abs(cdf_reference - cdf_live).max())
    effective = math.sqrt(len(reference) * len(live) / (len(reference) + len(live)))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    if lam < 1e-3:
        return statistic, 1.0
    terms = [2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101)]
    return statistic, float(min(1.0, max(0.0, sum(terms))))


def psi(reference: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """Population stability index over the reference's deciles (0: same; above 0.25: a large shift)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.allclose(live, reference[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(live, edges)[0] / len(live)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def compare(
    reference: Mapping[str, Sequence[float]],
    live: Mapping[str, Sequence[float]],
    alpha: float,
    psi_threshold: float,
) -> dict[str, dict[str, Any]]:
    """Per statistic: reference and live means, shift in reference SDs, KS statistic and p, PSI, moved."""
    result = {}
    for name in FEATURES:
        if name not in reference or name not in live:
            continue
        ref, now = np.asarray(reference[name], float), np.asarray(live[name], float)
        statistic, p_value = ks_test(ref, now)
        stability = psi(ref, now)
        spread = float(ref.std()) or 1.0
        result[name] = {
            "description": FEATURES[name],
            "reference_mean": float(ref.mean()),
            "live_mean": float(now.mean()),
            "shift_sd": float((now.mean() - ref.mean()) / spread),
            "ks_statistic": statistic,
            "p_value": p_value,
            "psi": stability,
            "moved": bool(p_value < alpha and stability >= psi_threshold),
        }
    return result


def reference_statistics(model: OnnxClassifier, photos: Sequence[Path]) -> dict[str, list[float]]:
    """The recorded statistics, computed on training-like photos the way the service computes them."""
    columns: dict[str, list[float]] = {name: [] for name in FEATURES}
    for path in photos:
        try:
            with Image.open(path) as image:
                size = image.size
                rgb = decode_opened(image, model.pre.resize_size)
        except Exception as error:  # a broken training file is the audit's business, not drift's
            log.warning("Skipped %s: %s", path, error)
            continue
        pixels = resize_and_crop(rgb, model.pre)
        stats = image_stats(pixels, size)
        stats["confidence"] = float(model.predict_pixels(pixels)[0].max())
        for name, value in stats.items():
            columns[name].append(value)
    return columns


def cached_reference(cfg: DictConfig) -> dict[str, list[float]]:
    """Reference statistics from ``reference_path`` when they were computed for this very model file and
    these photos; computed again (and cached) otherwise, e.g. after retraining."""
    folder = Path(cfg.reference_dir)
    photos = sample_evenly(find_images([folder]), cfg.reference_samples)
    if not photos:
        raise MushroomError(f"No photos in reference_dir={folder}. Pass the training photos' folder.")
    model_path = Path(cfg.model_path)
    if not model_path.is_file():
        raise MushroomError(f"Model file {model_path} does not exist. Pass the ONNX file the service runs.")
    key = {
        "model_sha256": file_sha256(model_path),
        "photos": folder_fingerprint([(path.resolve(), None) for path in photos]),
    }
    cache = Path(cfg.reference_path)
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            log.info("Reference statistics from %s (same model file and photos)", cache)
            return cached["statistics"]
        log.info("The model or the reference photos changed since %s was written: computing again", cache)
    statistics = reference_statistics(OnnxClassifier(model_path), photos)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "statistics": statistics}))
    return statistics


def read_recorded(path: Path, last: int | None) -> dict[str, list[float]]:
    if not path.is_file():
        raise MushroomError(
            f"No recorded statistics at {path}. "
            "Run the service with stats_path=FILE, then pass recorded=FILE."
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if last:
        rows = rows[-last:]
    return {name: [float(row[name]) for row in rows if name in row] for name in FEATURES}


def describe(name: str, row: Mapping[str, Any]) -> str:
    direction = "up" if row["shift_sd"] > 0 else "down"
    return (
        f"{name} ({row['description']}): {row['reference_mean']:.3g} -> {row['live_mean']:.3g}, "
        f"{direction} {abs(row['shift_sd']):.2f} SD (KS p={row['p_value']:.1e}, PSI={row['psi']:.2f})"
    )


def drift(cfg: DictConfig) -> dict[str, Any]:
    live = read_recorded(Path(cfg.recorded), cfg.last)
    count = len(live["brightness"])
    if count < MIN_RECORDED:
        raise MushroomError(
            f"Only {count} photos recorded in {cfg.recorded}; a drift check needs at least {MIN_RECORDED}."
        )
    reference = cached_reference(cfg)
    features = compare(reference, live, cfg.alpha, cfg.psi_threshold)
    moved = [name for name, row in features.items() if row["moved"]]
    report = {
        "recorded_photos": count,
        "reference_photos": len(reference["brightness"]),
        "moved": moved,
        "features": features,
    }
    path = Path(cfg.report_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    for name, row in features.items():
        log.info("%s %s", "MOVED " if row["moved"] else "steady", describe(name, row))
    if moved:
        log.warning("Drift in %s over the last %d photos. Report: %s", ", ".join(moved), count, path)
    else:
        log.info("No drift over the last %d photos. Report: %s", count, path)
    return report


@checked_command_line("drift")
@hydra.main(version_base="1.3", config_path="configs", config_name="drift")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    report = drift(cfg)
    if report["moved"] and cfg.fail_on_drift:
        sys.exit(3)


if __name__ == "__main__":
    main()
