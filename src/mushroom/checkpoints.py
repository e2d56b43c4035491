"""Reading checkpoints written by :mod:`mushroom.train`, with errors that say what to pass instead."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mushroom.core.onnx_model import ModelInfo
from mushroom.core.preprocessing import Preprocessing
from mushroom.errors import MushroomError
from mushroom.models import MushroomClassifier
from mushroom.models.classifier import with_calibration_defaults

if TYPE_CHECKING:
    from mushroom.models.ensemble import Ensemble

WHAT_TO_PASS = (
    "Use a best.ckpt or last.ckpt written by mushroom.train (model_path=<run dir>/checkpoints/best.ckpt)."
)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MushroomError(f"Checkpoint {path} does not exist. {WHAT_TO_PASS}")
    return path


def checkpoint_class_names(path: str | Path) -> list[str]:
    """The class names a checkpoint was trained on, without building its model."""
    path = _existing(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        return list(checkpoint["hyper_parameters"]["class_names"])
    except Exception as error:
        raise MushroomError(
            f"{path} is not a mushroom checkpoint ({type(error).__name__}: {error}). {WHAT_TO_PASS}"
        ) from error


def resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path`` to resume from: ``last`` is this run dir's ``checkpoints/last.ckpt``; anything else
    must be an existing file."""
    if not ckpt_path:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = (
            " To resume, pass the interrupted run's directory: hydra.run.dir=<that dir> ckpt_path=last."
            if ckpt_path == "last"
            else ""
        )
        raise MushroomError(f"Checkpoint {path} does not exist.{hint}")
    return str(path)


def check_resume_classes(ckpt_path: str, class_names: list[str]) -> None:
    """Refuse to resume a checkpoint trained on other classes than the data's."""
    trained_on = checkpoint_class_names(ckpt_path)
    if trained_on != class_names:
        raise MushroomError(
            f"{ckpt_path} was trained on classes {trained_on}, but the data has {class_names}. "
            "Resume with the same data, or start a new run without ckpt_path."
        )


def best_checkpoint(trainer: Any) -> str:
    """The best checkpoint a monitoring ``ModelCheckpoint`` of ``trainer`` saved ("" when none did)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return next(
        (
            cb.best_model_path
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path
        ),
        "",
    )


def model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights and buffers a checkpoint holds (its ``state_dict``), on the CPU; an older checkpoint's
    completed with the calibration buffers it lacks."""
    state = torch.load(_existing(path), map_location="cpu", weights_only=False)["state_dict"]
    return with_calibration_defaults(state)


def store_buffers(path: str | Path, buffers: dict[str, torch.Tensor]) -> None:
    """Write ``buffers`` (e.g. the fitted temperature) into the model state of the checkpoint at ``path``."""
    path = _existing(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    for name, value in buffers.items():
        checkpoint["state_dict"][name] = value.detach().clone().cpu()
    torch.save(checkpoint, path)


def load_classifier(path: str | Path) -> MushroomClassifier:
    """Load a checkpoint in eval mode on the CPU, without fetching pretrained weights again."""
    path = _existing(path)
    try:
        # The checkpoint holds the trained weights: do not fetch ImageNet ones, and skip compiling.
        model = MushroomClassifier.load_from_checkpoint(
            path, map_location="cpu", pretrained=False, compile=False
        )
    except Exception as error:
        raise MushroomError(
            f"Could not load {path} as a mushroom checkpoint ({type(error).__name__}: {error}). "
            f"{WHAT_TO_PASS}"
        ) from error
    return model.eval()


def model_info(classifier: MushroomClassifier, safety: dict[str, Any] | None, source: str) -> ModelInfo:
    """What an exported file or a prediction needs besides the network (safety: the config's table)."""
    return ModelInfo(
        class_names=list(classifier.class_names),
        preprocessing=Preprocessing.from_dict(classifier.hparams.get("preprocessing") or {}).as_dict(),
        abstain_threshold=classifier.fitted_abstain_threshold(),
        open_set_threshold=classifier.fitted_open_set_threshold(),
        deadly_risk=classifier.fitted_deadly_risk(),
        temperature=float(classifier.temperature),
        tta_hflip=bool(classifier.hparams["tta_hflip"]),
        tta_centre_crop=classifier.hparams["tta_centre_crop"],
        safety={name: (safety or {})[name] for name in classifier.class_names if name in (safety or {})},
        architecture=str(classifier.hparams["name"]),
        source=source,
    )


class TorchClassifier:
    """A training checkpoint behind the same interface as :class:`mushroom.core.onnx_model.OnnxClassifier`:
    ``info`` and ``predict_scores`` (as the exported graph computes them)."""

    model: MushroomClassifier | Ensemble
    info: ModelInfo

    def __init__(self, model_path: str | Path, safety: dict[str, Any] | None) -> None:
        self.model = load_classifier(model_path)
        self.info = model_info(self.model, safety, source=str(model_path))

    @classmethod
    def wrapping(cls, model: Ensemble, info: ModelInfo) -> TorchClassifier:
        """An :class:`mushroom.models.ensemble.Ensemble` (or any module with ``predict_scores``) behind this
        interface, with the ``info`` its exported file will carry."""
        wrapped = cls.__new__(cls)
        wrapped.model, wrapped.info = model.eval(), info
        return wrapped

    def predict_scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``N x 3 x S x S`` float32 → ``N x C`` probabilities and ``N x 2`` open-set scores."""
        with torch.no_grad():
            probs, open_set = self.model.predict_scores(torch.from_numpy(batch))
        return probs.numpy(), open_set.numpy()
