"""Would the fold models answer photos from unseen sources better part way back to ImageNet's weights?

    HF_HUB_CACHE=../shared/weights/hf-cache HF_HUB_OFFLINE=1 python benchmarks/weight_interpolation.py \\
        logs/cv/ship-source --alpha 0.5 0.75 --out logs/oof/wise-source

Fine-tuning moves a pretrained network towards the training photos' sources as well as their genera; a network
whose weights lie on the straight line between the pretrained ones and the fine-tuned ones keeps more of what
ImageNet taught it and, on other datasets, answered photos from shifted distributions better than either
end (WiSE-FT: Wortsman et al., "Robust fine-tuning of zero-shot models", 2022). For each fold of a
cross-validation (``invoke cv``, with its checkpoints) and each ``--alpha``, every backbone weight and
batch-norm statistic becomes ``pretrained + alpha * (fine-tuned - pretrained)`` (1: the fold model, 0:
ImageNet's backbone); the head keeps its fine-tuned weights (trained on the pretrained features for the first
epochs, then with the backbone). The result is calibrated again on the fold's validation photos and tests the
fold's photos and negatives (``benchmarks/test_resolution.py`` does both), and the pooled tables are compared
with the folds, paired. The pretrained weights come from timm's normal path (``HF_HUB_CACHE`` as above,
offline). No training.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from test_resolution import rescore_fold

log = logging.getLogger("weight_interpolation")


@functools.cache
def imagenet_weights(name: str, num_classes: int) -> dict[str, torch.Tensor]:
    """The pretrained network's weights, built once for every fold and share (all start from them)."""
    from mushroom.models.networks import create_network

    return create_network(name, num_classes=num_classes, pretrained=True).state_dict()


def towards_pretrained(alpha: float) -> Callable[[Any], None]:
    """A change for :func:`rescore_fold`: the backbone ``alpha`` of the way from ImageNet's weights to the
    fold's, in place; the head as trained."""
    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha {alpha}: a share in [0, 1] (1 is the fold model).")

    def change(model: Any) -> None:
        from mushroom.models.networks import classifier_head

        head = classifier_head(model.net)
        pretrained = imagenet_weights(model.hparams["name"], head.out_features)
        head_ids = {id(parameter) for parameter in head.parameters()}
        moved = 0
        with torch.no_grad():
            for name, tuned in model.net.state_dict(keep_vars=True).items():
                if id(tuned) in head_ids or not tuned.is_floating_point():
                    continue
                start = pretrained[name].to(tuned.dtype)
                moved += int(not torch.equal(start, tuned))
                tuned.copy_(start + alpha * (tuned - start))
        log.info("alpha %.2f: %d backbone tensors differ from ImageNet's and were moved", alpha, moved)

    return change


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folds", type=Path, help="a cross-validation's folder (fold_<k>/ with checkpoints/)")
    parser.add_argument(
        "--alpha", type=float, nargs="+", default=[0.5], help="shares of the fine-tuning kept"
    )
    parser.add_argument("--out", type=Path, required=True, help="alpha-<a>/ per share goes under it")
    parser.add_argument("--safety", default="genus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    from mushroom.cv import compare, fold_files, pooled_report

    for alpha in args.alpha:
        out = args.out / f"alpha-{alpha:g}"
        for config in fold_files(args.folds, "config.yaml"):
            log.info("%s, alpha %.2f", config.parent.name, alpha)
            rescore_fold(config.parent, None, out / config.parent.name, change=towards_pretrained(alpha))
        pooled_report(out, args.safety)
        compare(args.folds, out, args.safety)


if __name__ == "__main__":
    main()
