"""Would the fold models answer better at a larger test size, or from another checkpoint? No training.

    python benchmarks/test_resolution.py logs/oof/base/random --size 320 --out logs/oof/base-320-random
    python benchmarks/test_resolution.py logs/cv/new-source --checkpoint last --out logs/oof/last-source
    python benchmarks/test_resolution.py logs/cv/base-source --crop-pct 1.0 --out logs/oof/whole-source
    python benchmarks/test_resolution.py logs/cv/base-source --crop-pct 1.0 --tta-centre-crop 0.875 \
        --out logs/oof/two-crops-source

Training crops 25-100% of a photo and scales the crop to ``data.image_size``, so a mushroom looks larger to
the network in training than in the centre crop it is tested on; testing at a larger size than training can
undo that (Touvron et al., "Fixing the train-test resolution discrepancy", 2019). For each fold of a
cross-validation (``invoke cv`` or ``benchmarks/out_of_fold.py``, with its checkpoints), the best checkpoint
(``--checkpoint last``: the last epoch's instead) is calibrated again on the fold's validation photos at
``--size`` (default: the training size; temperature, thresholds: as training does) and tests the fold's photos
and negatives at that size. The fold tables go to ``--out`` (the checkpoints under it are copies: the
originals keep their calibration); then the two are compared, paired
(``python -m mushroom.cv DIR --compare OUT``).

``--crop-pct`` tests another share of the photo: the shorter side is resized to ``size / crop_pct`` and the
centre square of ``size`` taken, so 1.0 shows the network the whole shorter side (timm's 0.875 for
EfficientNet-Lite crops an eighth of it away, where a cap at the edge of a forager's photo may lie);
``--tta-centre-crop`` averages in the centre of what is tested, enlarged (``model.tta_centre_crop``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

log = logging.getLogger("test_resolution")


def rescore_fold(
    fold_dir: Path,
    size: int | None,
    out_dir: Path,
    checkpoint: str = "best",
    crop_pct: float | None = None,
    centre: float | None = None,
    change: Callable[[Any], None] | None = None,
) -> None:
    """Calibrate and test one fold's ``checkpoint`` (``best``, ``last``) at ``size`` and ``crop_pct``
    (``None``: as it trained), with its ``centre`` averaged in (``None``: as it trained) and the loaded
    model passed through ``change`` first (other benchmarks' edits of its weights); write
    ``out_dir/test_predictions.csv``."""
    from mushroom.calibration import CalibrateBestCheckpoint
    from mushroom.checkpoints import load_classifier
    from mushroom.core.safety import table_from_config
    from mushroom.run_report import report_on_test_split
    from mushroom.train import build_datamodule

    cfg = OmegaConf.load(fold_dir / "config.yaml")
    if size is not None:
        cfg.data.image_size = size
    if crop_pct is not None:
        cfg.data.crop_pct = crop_pct
    cfg.paths.output_dir = str(out_dir)
    best = out_dir / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fold_dir / "checkpoints" / f"{checkpoint}.ckpt", best)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    model = load_classifier(best)
    if centre is not None:
        model.hparams["tta_centre_crop"] = centre
    if change is not None:  # into the copy too: calibration reloads the weights from it
        change(model)
        checkpoint = torch.load(best, map_location="cpu", weights_only=False)
        checkpoint["state_dict"] = model.state_dict()
        torch.save(checkpoint, best)
    calibrator = CalibrateBestCheckpoint.from_config(cfg.calibration, model.hparams["deadly"])
    fitted = calibrator.calibrate(model, datamodule.val_dataloader(), str(best))
    report_on_test_split(model, datamodule, cfg, table_from_config(cfg.get("safety")), str(best), fitted, [])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folds", type=Path, help="a cross-validation's folder (fold_<k>/ with checkpoints/)")
    parser.add_argument("--size", type=int, help="the test resolution (pixels; default: the training size)")
    parser.add_argument(
        "--crop-pct", type=float, help="the share of the shorter side tested (default: the network's)"
    )
    parser.add_argument("--tta-centre-crop", type=float, help="the centre share averaged in (default: none)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which to test")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--safety", default="genus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    from mushroom.cv import compare, fold_files, pooled_report

    for config in fold_files(args.folds, "config.yaml"):
        fold_dir = config.parent
        log.info(
            "%s: %s checkpoint at %s px, crop %s",
            fold_dir.name,
            args.checkpoint,
            args.size or "training",
            args.crop_pct or "as trained",
        )
        out = args.out / fold_dir.name
        rescore_fold(fold_dir, args.size, out, args.checkpoint, args.crop_pct, args.tta_centre_crop)
    pooled_report(args.out, args.safety)
    compare(args.folds, args.out, args.safety)


if __name__ == "__main__":
    main()
