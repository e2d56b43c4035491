"""A model card (Markdown) next to the best checkpoint: what it was trained on, how well it does, and
what it must not be used for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mushroom.data import MushroomDataModule
from mushroom.report import per_class_markdown

log = logging.getLogger(__name__)

CARD_WARNING = (
    "**No photo-based tool can make a mushroom safe to eat.** This model names a genus from a photo "
    "and is wrong some of the time; the features that separate edible from deadly species (spore "
    "print, smell, the volva at the stem base, habitat) are often not in the photo. Never eat a wild "
    "mushroom because this model, or any other, named it."
)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _safety_lines(report: dict[str, Any]) -> list[str]:
    safety = report.get("safety")
    if not safety:
        return ["The safety table does not cover these classes: no dangerous-confusion figures."]
    plain = safety["without_abstaining"]
    lines = [
        f"Genera with deadly species: {', '.join(safety['deadly_genera']) or 'none'}.",
        f"- Dangerous confusions (an image of such a genus called a genus without deadly species): "
        f"{plain['dangerous_confusions']} of {plain['deadly_genus_images']} "
        f"(rate {_figure(plain['dangerous_confusion_rate'])}).",
    ]
    if "abstaining" in safety:
        cut = safety["abstaining"]
        rule = (
            f" and naming a genus without deadly species only below {cut['deadly_risk']:.0%} on those that "
            "have them"
            if cut.get("deadly_risk") is not None
            else ""
        )
        lines.append(
            f"- Answering only at confidence >= {cut['threshold']:.3f} (fitted on validation){rule}: "
            f"coverage {cut['coverage']:.3f}, accuracy when answering {_figure(cut['accuracy_answered'])}, "
            f"dangerous-confusion rate {_figure(cut['dangerous_confusion_rate'])}."
        )
    return lines


def _open_set_lines(report: dict[str, Any]) -> list[str]:
    view = report.get("open_set")
    if not view or view.get("threshold") is None:
        return ["No open-set threshold: every photo is answered with one of the classes or 'not sure'."]
    lines = [
        f"Below a known score of {view['threshold']:.4g} (fitted on validation) the answer is "
        f"'not a mushroom' or 'not a genus I know'; {_figure(view['known_answered_with_genus'])} of the "
        "test photos of the known classes are answered with a genus.",
    ]
    if not view["folders"]:
        lines.append("- No negative photos were held out to measure it on.")
    for name, row in view["folders"].items():
        lines.append(
            f"- {name} ({row['images']} photos never trained on): AUROC {_figure(row['auroc'])}, "
            f"FPR at 95% TPR {_figure(row['fpr_at_95_tpr'])}, "
            f"answered with a genus {_figure(row['answered_with_genus'])}."
        )
    return lines


def _negative_lines(datamodule: MushroomDataModule) -> list[str]:
    """Where the open-set negatives came from (Kaggle versions included) and how many each part held."""
    negatives = datamodule.negatives
    if negatives is None:
        return ["- Negatives (open set): none."]
    named = [(s["source"], f" v{s['version']}" if s["version"] else "", s["kind"]) for s in negatives.sources]
    sources = "; ".join(f"`{source}`{version} ({kind})" for source, version, kind in named)
    left_out = ", ".join(f"{n} {why}" for why, n in negatives.left_out.items()) or "nothing"
    return [f"- Negatives (open set): {sources}; per part {negatives.counts()}; left out: {left_out}."]


def write_model_card(
    report: dict[str, Any] | None,
    cfg: DictConfig,
    datamodule: MushroomDataModule,
    folder: Path,
    calibration: dict[str, float] | None = None,
) -> Path:
    """Write ``model_card.md`` in ``folder`` from a test report; ``None`` for a run without a test split
    (``data.fold=null``), whose figures come from the recipe's cross-validation."""
    index, split = datamodule.index_and_split()
    counts = dict(zip(index.class_names, index.class_counts().tolist(), strict=True))
    calibration = (report or {}).get("calibration") or calibration or {}
    pre = datamodule.preprocessing
    held_out = (
        f"test = fold {cfg.data.fold} of {cfg.data.num_folds}"
        if cfg.data.fold is not None
        else "no test fold: data.fold=null"
    )
    lines = [
        f"# Model card: {cfg.model.name} on {Path(str(cfg.data.root)).name}",
        "",
        CARD_WARNING,
        "",
        "## Model",
        f"- Network: `{cfg.model.name}` ({'ours' if cfg.model.name == 'small_cnn' else 'timm'}; "
        f"pretrained={cfg.model.get('pretrained')}), "
        f"{len(index.class_names)} classes: {', '.join(index.class_names)}.",
        f"- Input: {pre.image_size} px, normalised with mean {list(pre.mean)} and std {list(pre.std)}.",
        f"- Temperature (fitted on validation): {calibration.get('temperature', 1.0):.3f}.",
        "",
        "## Data",
        f"- Folder: `{cfg.data.root}`; images per class: {counts}.",
        f"- Split: train {len(split.train)}, validation {len(split.val)}, test {len(split.test)} "
        + f"({held_out}, seed {cfg.data.seed}"
        + (", grouped by duplicate group from the audit)." if cfg.data.prepare.enabled else ")."),
        *_negative_lines(datamodule),
        "",
        "## Test figures",
    ]
    if report is None:
        lines += [
            "None: every photo but the validation ones trained this model. Its recipe's figures are its "
            "cross-validation's (`python -m mushroom.cv`), with the same settings and `data.fold` 0 to "
            "`data.num_folds - 1`; the thresholds were fitted on the validation photos as there.",
            "",
        ]
    else:
        lines += [
            f"Accuracy {report['accuracy']:.3f}, balanced accuracy {report['balanced_accuracy']:.3f}, "
            f"macro F1 {report['macro_f1']:.3f}, "
            f"expected calibration error {report.get('ece', float('nan')):.3f} "
            f"on {report['n_images']} images.",
            "",
            per_class_markdown(report),
        ]
        lines += ["## Safety", "", *_safety_lines(report), ""]
        lines += ["## Photos of no known class (open set)", "", *_open_set_lines(report), ""]
    lines += [
        "## Known limits",
        "- Trained on photos from the web: framing, light and cameras differ from a forager's phone.",
        "- It knows only the classes above; a mushroom of another genus that looks like one of them can "
        "still be named as that one (see the open-set figures"
        + ("" if report else " of the cross-validation")
        + ").",
        "- Small classes have few test images: their figures move a lot with one photo.",
        "",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model_card.md"
    path.write_text("\n".join(lines))
    log.info("Model card written to %s", path)
    return path
