"""Several trained models as one: their calibrated probabilities and open-set scores averaged, the thresholds
fitted again, one ONNX graph (``python -m mushroom.export model_path=A 'ensemble_with=[B]'``).

Each member's probabilities are calibrated by its own temperature, but their average is another model: a
"not sure" or open-set threshold fitted on one member promises nothing for it. So both are fitted again, by
the rules training fits them by (:func:`mushroom.calibration.fit_thresholds`), on the validation photos the
members share: the first checkpoint's data settings rebuild its split, and members validated on other photos
are refused (a photo one of them trained on would make the fitted thresholds optimistic).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mushroom.core.onnx_model import ModelInfo
from mushroom.cv import THRESHOLD_RULES
from mushroom.errors import MushroomError
from mushroom.models.ensemble import Ensemble, override_text

log = logging.getLogger(__name__)

#: The data settings that decide which photos validate a model: the members must share all of them.
SPLIT_SETTINGS = (
    "root",
    "name",
    "kaggle_handle",
    "label_map",
    "num_folds",
    "fold",
    "val_fraction",
    "seed",
    "prepare",
)


def shared_validation(checkpoints: Sequence[Path]) -> dict[str, Any]:
    """The data settings of the first checkpoint, refused unless every member was validated on the same
    photos (:data:`SPLIT_SETTINGS` equal)."""
    settings = [_datamodule_settings(path) for path in checkpoints]
    for path, other in zip(checkpoints[1:], settings[1:], strict=True):
        differ = [key for key in SPLIT_SETTINGS if other.get(key) != settings[0].get(key)]
        if differ:
            shown = ", ".join(f"{key}: {settings[0].get(key)!r} against {other.get(key)!r}" for key in differ)
            fix = " ".join(f"data.{key}={override_text(settings[0].get(key))}" for key in differ)
            raise MushroomError(
                f"{path} was validated on other photos than {checkpoints[0]} ({shown}). The ensemble's "
                "thresholds are fitted on photos no member trained on, so the members share one split: "
                f"train it again with {fix} (data.seed follows seed unless given: seed=7 data.seed=42 is "
                "another model on the same split)."
            )
    return settings[0]


def _datamodule_settings(path: Path) -> dict[str, Any]:
    """The data settings training stored in a checkpoint (Lightning's ``datamodule_hyper_parameters``)."""
    stored = torch.load(path, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters")
    if not stored:
        raise MushroomError(
            f"{path} holds no data settings (it was not written by mushroom.train with its data module), "
            "so the photos it was validated on are unknown and the ensemble's thresholds cannot be fitted."
        )
    return dict(stored)


def validation_scores(
    ensemble: Ensemble, settings: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ensemble's calibrated probabilities, open-set scores and labels on the members' validation
    photos, rebuilt from their data settings."""
    from mushroom.data import MushroomDataModule
    from mushroom.inference import collect_scores

    datamodule = MushroomDataModule(**{**settings, "test_on_all": False})
    datamodule.prepare_data()
    datamodule.setup("validate")
    if list(datamodule.class_names) != ensemble.class_names:
        raise MushroomError(
            f"The members' data at {settings['root']} now holds the classes {datamodule.class_names}, not "
            f"the {ensemble.class_names} they were trained on: the folder changed since training."
        )
    loader = datamodule.val_dataloader()
    if not len(loader.dataset):  # type: ignore[arg-type]
        raise MushroomError(
            "The members were trained without validation photos (data.val_fraction=0): the ensemble's "
            "thresholds have nothing to be fitted on. Train them with validation photos."
        )
    return collect_scores(ensemble, loader)  # type: ignore[arg-type]


def training_rules(checkpoint: Path, given: Mapping[str, float | None]) -> dict[str, float | None]:
    """The calibration rules to fit by: those ``given``, else the first member's training run's
    (``calibration`` in the ``config.yaml`` beside its ``checkpoints/`` folder)."""
    from omegaconf import OmegaConf

    rules = {rule: given.get(rule) for rule in THRESHOLD_RULES}
    config = checkpoint.parent.parent / "config.yaml"
    if any(value is None for value in rules.values()) and config.is_file():
        trained = OmegaConf.select(OmegaConf.load(config), "calibration") or {}
        rules = {rule: trained.get(rule) if value is None else value for rule, value in rules.items()}
    if rules["dangerous_target"] is None:
        raise MushroomError(
            f"No calibration rules for the ensemble: none given and no training config at {config}. Give "
            "them as the members were trained: calibration.dangerous_target=... calibration.open_set_tpr=... "
            "calibration.deadly_risk=..."
        )
    return rules


def fitted_ensemble(
    checkpoints: Sequence[str | Path], rules: Mapping[str, float | None], safety: dict[str, Any] | None
) -> tuple[Ensemble, ModelInfo]:
    """The members loaded as one :class:`Ensemble`, and what its exported file carries: the members'
    classes and preprocessing, and thresholds fitted on their shared validation photos by ``rules``."""
    from mushroom.calibration import fit_thresholds, warn_about_calibration
    from mushroom.checkpoints import load_classifier, model_info

    paths = [Path(path) for path in checkpoints]
    members = [load_classifier(path) for path in paths]
    ensemble = Ensemble(members).eval()
    settings = shared_validation(paths)
    rules = training_rules(paths[0], rules)
    probs, open_set, labels = validation_scores(ensemble, settings)
    deadly = members[0].hparams.get("deadly")
    thresholds = fit_thresholds(
        probs,
        open_set,
        labels,
        None if deadly is None else np.asarray(deadly, dtype=bool),
        rules["dangerous_target"],
        rules["open_set_tpr"],
        rules["deadly_risk"],
    )
    warn_about_calibration(len(labels), temperature=1.0)  # no temperature of its own: the count alone
    log.info("Fitted the ensemble of %d on %d validation photos: %s", len(members), len(labels), thresholds)
    info = dataclasses.replace(
        model_info(members[0], safety, source=" + ".join(str(path) for path in paths)),
        abstain_threshold=thresholds.get("abstain_threshold"),
        open_set_threshold=thresholds.get("open_set_threshold"),
        deadly_risk=thresholds.get("deadly_risk"),
        temperature=1.0,  # each member's own is inside the graph
        tta_hflip=all(bool(member.hparams["tta_hflip"]) for member in members),
        architecture="ensemble of " + " + ".join(str(member.hparams["name"]) for member in members),
    )
    return ensemble, info
