"""Open-set and safety figures of trained runs, on the same held-out photos for every run.

    python benchmarks/open_set.py --open-set ../shared/data/open-set RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a ``mushroom.train`` output (``config.yaml``, ``checkpoints/best.ckpt``). The known photos
are the run's own test split; the negatives are the test part of ``--open-set`` as ``data.open_set``
splits it (other genera held out by genus, so never trained on by a run that used negatives). For each
run, two answers are scored:

- ``max_prob``: the closed-set model's only tool, the top calibrated probability against the fitted
  "not sure" threshold (what the package did before the open-set answer);
- ``model``: the model's own answer, open-set threshold and "not sure" threshold together.

Also per *source family* (the file-name stem before its number, e.g. ``amanita_muscaria``, ``images``):
accuracy and answered share of the test photos of each family, since the shared photos come from few
sources and a model can learn a source's look instead of a genus.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mushroom.checkpoints import load_classifier
from mushroom.core.open_set import answered_with_genus, auroc, fpr_at_tpr, open_set_view
from mushroom.core.safety import deadly_mask, table_from_config
from mushroom.data.splits import source_family
from mushroom.inference import collect_scores


def closed_set_figures(
    probs: np.ndarray, labels: np.ndarray, answered: np.ndarray, deadly: np.ndarray
) -> dict:
    predicted = probs.argmax(1)
    recalls = [float((predicted[labels == c] == c).mean()) for c in np.unique(labels)]
    dangerous = answered & deadly[labels] & ~deadly[predicted]
    return {
        "images": len(labels),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "balanced_accuracy": round(float(np.mean(recalls)), 4),
        "answered_with_genus": round(float(answered.mean()), 4),
        "accuracy_answered": round(float((predicted == labels)[answered].mean()), 4)
        if answered.any()
        else None,
        "dangerous_answered": int(dangerous.sum()),
        "dangerous_rate_answered": round(float(dangerous.sum() / max(1, answered.sum())), 4),
    }


def score_run(run: Path, open_set_root: Path) -> dict:
    cfg = OmegaConf.load(run / "config.yaml")
    model = load_classifier(run / "checkpoints" / "best.ckpt")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.update(model.hparams.get("preprocessing") or {})  # the size and normalisation it was trained with
    data.update(class_names=model.class_names, num_workers=0, open_set={"root": str(open_set_root)})
    datamodule = instantiate(data, _convert_="all")
    datamodule.setup("test")
    index, split = datamodule.index_and_split()
    probs, open_set, labels = collect_scores(model, datamodule.test_dataloader())
    negatives = {
        kind: collect_scores(model, loader)[:2]
        for kind, loader in datamodule.negatives_by_kind("test").items()
    }
    abstain, open_threshold = model.fitted_abstain_threshold(), model.fitted_open_set_threshold()
    deadly = deadly_mask(model.class_names, table_from_config(cfg.get("safety")))
    assert deadly is not None, "the safety table must cover the classes"

    max_prob = {
        name: {
            "auroc": round(auroc(probs.max(1), p.max(1)), 4),
            "fpr_at_95_tpr": round(fpr_at_tpr(probs.max(1), p.max(1)), 4),
            "answered_with_genus": round(float((p.max(1) >= (abstain or 0.0)).mean()), 4),
        }
        for name, (p, _) in negatives.items()
    }
    view = open_set_view((probs, open_set), negatives, abstain, open_threshold)
    answered = answered_with_genus(probs, open_set, abstain, open_threshold)
    paths = [index.paths[i] for i in split.test]
    families = np.asarray(
        [f"{index.class_names[label]}/{source_family(p)}" for p, label in zip(paths, labels, strict=True)]
    )
    by_family = {
        name: {
            "images": int((families == name).sum()),
            "accuracy": round(float((probs.argmax(1) == labels)[families == name].mean()), 4),
            "answered_with_genus": round(float(answered[families == name].mean()), 4),
        }
        for name in sorted(set(families))
    }
    return {
        "run": str(run),
        "thresholds": {
            "abstain": abstain,
            "open_set": open_threshold,
            "temperature": float(model.temperature),
        },
        "known_test": {
            "max_prob": closed_set_figures(probs, labels, probs.max(1) >= (abstain or 0.0), deadly),
            "model": closed_set_figures(probs, labels, answered, deadly),
        },
        "negatives_test": {
            "max_prob": max_prob,
            "model": {
                name: {key: (round(v, 4) if isinstance(v, float) else v) for key, v in row.items()}
                for name, row in view["folders"].items()
            },
        },
        "by_source_family": by_family,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="mushroom.train output folders")
    parser.add_argument(
        "--open-set", type=Path, required=True, help="not_mushroom/ and other_genera/ folders"
    )
    parser.add_argument("--out", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args()
    results = [score_run(run.resolve(), args.open_set.resolve()) for run in args.runs]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
