"""Does the open set read sharpness? Judged on the fold models of a cross-validation.

    python benchmarks/sharpness.py logs/cv/base-source [--side 194] [--out logs/cv/base-source/sharpness.json]

Each fold's best checkpoint scores the photos it was tested on as the service reads them (from the
original files, not the training cache), twice: as they are, and shrunk to a shorter side of ``--side``
pixels (default: the known photos' median) before the usual resize and crop. Shrinking changes how sharp a
photo is, not what it shows. The figure is the share of photos the open set lets through (known score at
least the fold's threshold), per kind, with the paired difference shrunk - as they are and its 95% bootstrap
interval over duplicate groups. A model that judges what a photo shows moves little; one that learnt "sharp
photo: not a genus I know" (the shared genus photos are small, the negatives large) lets more through once
shrunk, and refuses the sharp photos users take of known genera.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from PIL import Image

from mushroom.core.bootstrap import paired_differences, resamples
from mushroom.core.images import load_rgb
from mushroom.core.preprocessing import eval_preprocess
from mushroom.data.cache import shrink
from mushroom.predict import load_any

log = logging.getLogger("sharpness")


def fold_scores(fold_dir: Path, rows: pd.DataFrame, side: int) -> pd.DataFrame:
    """Known scores of one fold's test photos, as they are and shrunk to ``side``."""
    config = OmegaConf.load(fold_dir / "config.yaml")
    roots = {"known": Path(config.data.root), "negative": Path(config.data.open_set.root)}
    model = load_any(fold_dir / "checkpoints" / "best.ckpt")
    pre = model.info.pre

    def scores(images: list[np.ndarray], change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        out = []
        for start in range(0, len(images), 32):
            batch = np.stack([eval_preprocess(change(image), pre) for image in images[start : start + 32]])
            _, open_set = model.predict_scores(batch)
            assert open_set is not None, f"{fold_dir} has no open-set head"
            out.append(open_set[:, 0])
        return np.concatenate(out)

    images = [
        load_rgb(roots["known" if kind == "known" else "negative"] / photo)
        for kind, photo in zip(rows.kind, rows.photo, strict=True)
    ]
    return rows.assign(
        larger=[min(image.shape[:2]) > side for image in images],
        native=scores(images, lambda image: image),
        shrunk=scores(images, lambda image: shrink(image, side)),
    )


def judged(table: pd.DataFrame, samples: int, seed: int) -> dict[str, dict]:
    """Per group (each kind, and the known photos that shrinking changes): the share let through as they
    are and shrunk, the paired difference and its interval."""
    masks = {
        "known": table.kind.eq("known").to_numpy(),
        "known, larger than --side": (table.kind.eq("known") & table.larger).to_numpy(),
        "other_genus": table.kind.eq("other_genus").to_numpy(),
        "not_mushroom": table.kind.eq("not_mushroom").to_numpy(),
    }
    threshold = table.open_set_threshold.to_numpy()

    def let_through(column: str) -> Callable[[np.ndarray], dict[str, float | None]]:
        passed = table[column].to_numpy() >= threshold

        def statistic(rows: np.ndarray) -> dict[str, float | None]:
            return {
                name: float(passed[rows][mask[rows]].mean()) if mask[rows].any() else None
                for name, mask in masks.items()
            }

        return statistic

    drawn = resamples(table.kind.tolist(), table.group.tolist(), samples, seed)
    moved = paired_differences(
        let_through("native"), let_through("shrunk"), len(table), drawn, lambda _: False
    )
    for name, mask in masks.items():
        moved[name]["photos"] = int(mask.sum())
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folds", type=Path, help="a cross-validation's folder (fold_<k>/, oof_predictions.csv)"
    )
    parser.add_argument(
        "--side", type=int, help="shorter side to shrink to (default: the known photos' median)"
    )
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: <folds>/sharpness.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    table = pd.read_csv(args.folds / "oof_predictions.csv")
    table = table[table.part == "test"]
    side = args.side
    if side is None:
        config = OmegaConf.load(args.folds / f"fold_{table.fold.min()}" / "config.yaml")
        known = table[table.kind == "known"].photo
        side = int(np.median([min(Image.open(Path(config.data.root) / p).size) for p in known]))  # headers
    scored = pd.concat(
        [fold_scores(args.folds / f"fold_{fold}", rows, side) for fold, rows in table.groupby("fold")]
    )
    report = {"side": side, "let_through": judged(scored, args.samples, args.seed)}
    for name, row in report["let_through"].items():
        figures = (row["before"], row["after"], side, row["difference"], row["low"], row["high"])
        log.info(
            "%-26s %4d photos: let through %.3f as they are, %.3f shrunk to %d px: %+.3f [%+.3f, %+.3f]",
            name, row["photos"], *figures,
        )  # fmt: skip
    out = args.out or args.folds / "sharpness.json"
    out.write_text(json.dumps(report, indent=1))
    scores = out.with_suffix(".csv")
    scored[["photo", "kind", "fold", "group", "open_set_threshold", "larger", "native", "shrunk"]].to_csv(
        scores, index=False
    )
    log.info("Written to %s and %s (each photo's known score)", out, scores)


if __name__ == "__main__":
    main()
