"""``MushroomClassifier``: cross-entropy fine-tuning, optimizer and schedule from config, metrics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mushroom.core.answer import Thresholds
from mushroom.errors import MushroomError
from mushroom.models.mixing import Mixing
from mushroom.models.mixstyle import MixStyle
from mushroom.models.networks import classifier_head, create_network, layer_lr_scales
from mushroom.models.scoring import danger_term, open_set_scores
from mushroom.models.tta import by_view, centre_views, stacked_views
from mushroom.schemas import LEGACY_MODEL_KEYS, ModelConfig, from_mapping, settings_dict

#: What calibration stores in the model, and the value a checkpoint written before it existed gets.
CALIBRATION_DEFAULTS = {
    "temperature": 1.0,
    "abstain_threshold": float("nan"),
    "open_set_threshold": float("nan"),
    "deadly_risk": float("nan"),
}


def with_calibration_defaults(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a checkpoint's state_dict) completed with what older checkpoints lack: uncalibrated, no
    thresholds, no deadly-risk rule."""
    for name, value in CALIBRATION_DEFAULTS.items():
        state.setdefault(name, torch.tensor(value))
    return state


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "balanced_acc": MulticlassAccuracy(num_classes, average="macro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def built_from(config: dict[str, Any], group: str) -> Any:
    """The ``_partial_`` object an option of the ``optimizer`` or ``scheduler`` group configures."""
    if "_target_" not in config:
        raise MushroomError(
            f"model.{group} is {dict(config)}, with no _target_ to build. An option of the {group} group "
            f"must start with the line `# @package model.{group}` (see configs/{group}/)."
        )
    return instantiate(config)


class MushroomClassifier(L.LightningModule):
    """Classifies an image into ``class_names``; everything needed to rebuild it is in its hparams."""

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        class_counts: Sequence[int] | None = None,
        preprocessing: dict[str, Any] | None = None,
        open_set_classes: int = 0,
        deadly: Sequence[bool] | None = None,
        **settings: Any,
    ) -> None:
        """``settings``: any field of :class:`mushroom.schemas.ModelConfig`, whose defaults apply. The rest
        comes from the data: the classes, their counts in train, the preprocessing, the negatives' outputs
        and which classes hold deadly species."""
        super().__init__()
        config = from_mapping(ModelConfig, settings, "model", legacy=LEGACY_MODEL_KEYS)
        self.save_hyperparameters(
            settings_dict(config)
            | {
                "class_names": list(class_names),
                "class_counts": class_counts,
                "preprocessing": preprocessing,
                "open_set_classes": open_set_classes,
                "deadly": deadly,
            }
        )
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        # Outlier exposure: one more output per kind of negative photo (mushroom.core.open_set).
        self.num_outputs = num_classes + open_set_classes
        self.net = create_network(
            config.name,
            self.num_outputs,
            pretrained=config.pretrained,
            drop_rate=config.drop_rate,
            drop_path_rate=config.drop_path_rate,
            cnn_channels=tuple(config.cnn_channels),
            image_size=(preprocessing or {}).get("image_size"),
        )
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.frozen = self._freeze(config.freeze)
        self.mixing = Mixing(
            mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha, prob=config.mix_prob
        )
        self.mixstyle = MixStyle(config.mixstyle_prob, config.mixstyle_alpha)
        self.mixstyle.attach(self._submodules(config.mixstyle_layers, "model.mixstyle_layers"))
        if config.compile:
            # Compiles forward in place: parameter names, and so checkpoints, stay the same.
            self.net.compile()
        danger_weight = config.danger_weight

        weights = None
        if config.class_weighted_loss:
            if class_counts is None:
                raise ValueError("class_weighted_loss needs class_counts (images per class in train)")
            counts = torch.as_tensor(class_counts, dtype=torch.float32).clamp(min=1)
            weights = counts.sum() / (len(counts) * counts)
            weights = torch.cat(
                [weights, torch.ones(open_set_classes)]
            )  # negatives weigh as an average class
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", weights, persistent=False)
        if danger_weight and (deadly is None or len(deadly) != num_classes):
            raise MushroomError(
                "model.danger_weight needs the safety table to cover every class (which genera are deadly); "
                "set model.danger_weight=0 for these classes."
            )
        # Which outputs are genera with deadly species (negatives never are), for the danger term.
        self.deadly: torch.Tensor
        padded = [*(deadly or [False] * num_classes), *[False] * open_set_classes]
        self.register_buffer("deadly", torch.tensor(padded, dtype=torch.bool), persistent=False)

        # Set after fitting from the validation split (mushroom.train): temperature scaling, and the
        # confidence below which to answer "not sure" (NaN until fitted). Saved in the checkpoint.
        self.temperature: torch.Tensor
        self.abstain_threshold: torch.Tensor
        # The known score below which a photo is "not a mushroom" / "not a genus I know" (NaN: none).
        self.open_set_threshold: torch.Tensor
        # A genus without deadly species is named only below this mass on deadly genera (NaN: no such rule).
        self.deadly_risk: torch.Tensor
        for name, value in CALIBRATION_DEFAULTS.items():
            self.register_buffer(name, torch.tensor(value))

        self.train_metrics = classification_metrics(num_classes, "train/")
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")

    # -- network ------------------------------------------------------------------------------------
    def _submodules(self, names: Sequence[str], key: str) -> list[nn.Module]:
        """The network's sub-modules ``names`` (e.g. ``blocks.0``); a clear error naming ``key`` if one is
        not there."""
        modules = dict(self.net.named_modules())
        unknown = [name for name in names if name not in modules]
        if unknown:
            top = ", ".join(name for name, _ in self.net.named_children())
            raise MushroomError(
                f"{key} names sub-modules that {self.hparams['name']} does not have: {unknown}. "
                f"Its top-level sub-modules are: {top} (nested ones are named like blocks.0)."
            )
        return [modules[name] for name in names]

    def _freeze(self, names: Sequence[str]) -> list[nn.Module]:
        """Stop gradients to the named sub-modules (e.g. ``blocks.0``); :meth:`train` keeps them in eval."""
        frozen = self._submodules(names, "model.freeze")
        for module in frozen:
            module.requires_grad_(False)
        return frozen

    def backbone_modules(self) -> list[nn.Module]:
        """Top-level sub-modules of the network other than the classification head."""
        head = classifier_head(self.net)
        return [module for module in self.net.children() if module is not head]

    def training_head_only(self) -> bool:
        """True during the first ``head_only_epochs`` epochs of fitting (linear probing, then fine-tuning)."""
        epochs = self.hparams["head_only_epochs"]
        return bool(epochs) and self._trainer is not None and self.trainer.current_epoch < epochs

    def train(self, mode: bool = True) -> MushroomClassifier:
        super().train(mode)
        for module in self.frozen:
            module.eval()  # frozen layers keep their pretrained BatchNorm statistics
        if mode and self.training_head_only():
            for module in self.backbone_modules():
                module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Linear-probe the head first, then fine-tune everything that is not frozen for good.

        Training the new head on fixed features before the backbone moves keeps the pretrained
        features from being distorted by a random head, which helps on photos unlike the training
        set (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features").
        """
        if not self.hparams["head_only_epochs"]:
            return
        head_only = self.training_head_only()
        for module in self.backbone_modules():
            module.requires_grad_(not head_only)
        for module in self.frozen:  # the loop above reaches them too: frozen for good stays frozen
            module.requires_grad_(False)
        self.train()  # one place decides which sub-modules run in eval mode

    def all_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The network's outputs: one per genus, then one per kind of negative (outlier exposure)."""
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The genus logits."""
        return self.all_logits(images)[:, : len(self.class_names)]

    def fitted_abstain_threshold(self) -> float | None:
        """The "not sure" threshold fitted on validation, or ``None`` when none was fitted (NaN)."""
        threshold = float(self.abstain_threshold)
        return None if math.isnan(threshold) else threshold

    def fitted_open_set_threshold(self) -> float | None:
        """The open-set threshold on the known score fitted on validation, or ``None`` (NaN)."""
        threshold = float(self.open_set_threshold)
        return None if math.isnan(threshold) else threshold

    def fitted_deadly_risk(self) -> float | None:
        """The deadly-risk rule stored at calibration (:func:`~mushroom.core.safety.confident`), or None."""
        risk = float(self.deadly_risk)
        return None if math.isnan(risk) else round(risk, 6)  # as set (0.01), not float32's 0.0099999998

    def thresholds(self) -> Thresholds:
        """The operating point stored at calibration: what the model's answers are given at."""
        return Thresholds(
            self.fitted_abstain_threshold(), self.fitted_open_set_threshold(), self.fitted_deadly_risk()
        )

    def open_set_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """:func:`~mushroom.models.scoring.open_set_scores` of all the network's outputs."""
        return open_set_scores(logits, len(self.class_names))

    def predict_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated genus probabilities (logits / temperature) and :meth:`open_set_scores`; with
        ``tta_hflip``, both averaged with the mirror image's; with ``tta_centre_crop``, the probabilities
        averaged with the centre's too, and the open-set scores the centre's
        (:mod:`~mushroom.models.tta`).

        The views go through the network in the same batch: one pass, and an exported graph that uses
        each weight once (ONNX Runtime's quantizer needs that).
        """
        centre, mirror = self.hparams["tta_centre_crop"], bool(self.hparams["tta_hflip"])
        logits = self.all_logits(stacked_views(images, centre, mirror))
        probs = (logits[:, : len(self.class_names)] / self.temperature).softmax(-1)
        open_set = self.open_set_scores(logits)
        if centre is None and not mirror:
            return probs, open_set
        probs = by_view(probs, centre, mirror).mean(0)
        open_set = centre_views(by_view(open_set, centre, mirror), centre).mean(0)
        return probs, open_set

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Calibrated genus probabilities (see :meth:`predict_scores`)."""
        return self.predict_scores(images)[0]

    def predict_log_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Log of :meth:`predict_proba` (the same argmax as the logits)."""
        return self.predict_proba(images).clamp_min(1e-12).log()

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Deprecated name of :meth:`predict_log_proba` (it never returned logits); removed in 0.3.0."""
        warnings.warn(
            "MushroomClassifier.predict_logits is now predict_log_proba (it returns log-probabilities); "
            "the old name goes in mushroom 0.3.0.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.predict_log_proba(images)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before calibration existed load as uncalibrated."""
        with_calibration_defaults(checkpoint.get("state_dict", {}))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against class indices, or against soft targets (rows of probabilities); plus
        ``danger_weight`` x the danger term for photos of deadly genera."""
        loss = F.cross_entropy(
            logits, targets, weight=self.class_weights, label_smoothing=self.hparams["label_smoothing"]
        )
        if self.hparams["danger_weight"] and targets.ndim == 1:
            loss = loss + self.hparams["danger_weight"] * self.danger(logits, targets)
        return loss

    def danger(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The danger term (:func:`~mushroom.models.scoring.danger_term`) for this model's deadly genera."""
        return danger_term(logits, targets, self.deadly)

    def distillation(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits against the teacher's probabilities, both softened by
        ``distill_temperature`` T, times T squared (so that its gradients keep their size as T grows)."""
        temperature = self.hparams["distill_temperature"]
        softened = teacher.clamp_min(1e-8).log() / temperature
        targets = softened.softmax(-1)
        return -(targets * (logits / temperature).log_softmax(-1)).sum(-1).mean() * temperature**2

    def _teacher(self, batch: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """The batch's soft targets when the loss uses them; a clear error if it needs them and has none."""
        if not self.hparams["distill_weight"]:
            return None
        if len(batch) < 3:
            raise MushroomError(
                f"model.distill_weight={self.hparams['distill_weight']} needs a teacher's soft targets: set "
                "data.teacher.name (e.g. vit_small_patch14_dinov2.lvd142m), or model.distill_weight=0."
            )
        if self.mixing.enabled:
            raise MushroomError(
                "model.distill_weight does not combine with Mixup or CutMix (a mixed photo has no teacher "
                "target): set model.mixup_alpha=0 and model.cutmix_alpha=0, or model.distill_weight=0."
            )
        return batch[2]

    # -- steps --------------------------------------------------------------------------------------
    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch[0], batch[1]
        teacher = self._teacher(batch)
        if self.mixing.enabled and not self.training_head_only():
            # Mixed images have no single right answer: train accuracy is not logged for them.
            images, soft_targets = self.mixing(images, targets, self.num_outputs)
            loss = self.loss(self.all_logits(images), soft_targets)
        else:
            logits = self.all_logits(images)
            loss = self.loss(logits, targets)
            if teacher is not None:
                share = self.hparams["distill_weight"]
                loss = (1 - share) * loss + share * self.distillation(logits, teacher)
            known = targets < len(self.class_names)  # negatives have no genus to be right about
            if known.any():
                self.train_metrics.update(logits[known, : len(self.class_names)], targets[known])
                self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, targets = batch
        logits = self(images)
        self.val_metrics.update(logits, targets)
        self.log(
            "val/loss", self.loss(logits, targets), prog_bar=True, batch_size=len(targets), sync_dist=True
        )
        self.log_dict(self.val_metrics, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, targets = batch
        # Calibrated log-probabilities: a softmax of them is themselves, so the loss is their NLL.
        log_probs = self.predict_log_proba(images)
        self.test_metrics.update(log_probs, targets)
        self.log("test/loss", self.loss(log_probs, targets), batch_size=len(targets), sync_dist=True)
        self.log_dict(self.test_metrics)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self.predict_proba(images)

    # -- optimisation -------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """Trainable parameters by (head or backbone, decays or not, layer); norms, biases and what the
        network names in ``no_weight_decay()`` (a ViT's position embedding) get no weight decay.

        ``lr_scale`` (1 for the head, ``backbone_lr_scale`` for the backbone, times
        ``layer_decay ** (layers above)`` with ``model.layer_decay``) is applied to the optimizer's lr by
        :meth:`build_optimizer`.
        """
        head_ids = {id(p) for p in classifier_head(self.net).parameters()}
        layer_scale = layer_lr_scales(self.net, self.hparams.get("layer_decay"))
        no_decay = set(getattr(self.net, "no_weight_decay", lambda: ())())
        groups: dict[tuple[bool, bool, float], list[nn.Parameter]] = {}
        for name, parameter in self.net.named_parameters():
            if not parameter.requires_grad:
                continue
            decays = parameter.ndim > 1 and name not in no_decay
            key = (id(parameter) in head_ids, decays, layer_scale.get(name, 1.0))
            groups.setdefault(key, []).append(parameter)
        scale = self.hparams["backbone_lr_scale"]
        return [
            {"params": params, "lr_scale": (1.0 if is_head else scale) * layer}
            | ({} if decays else {"weight_decay": 0.0})
            for (is_head, decays, layer), params in groups.items()
        ]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The ``optimizer`` config (``_partial_``) over :meth:`parameter_groups`; AdamW if there is none."""
        config = self.hparams["optimizer"]
        factory = built_from(config, "optimizer") if config else torch.optim.AdamW
        groups = self.parameter_groups()
        scales = [group.pop("lr_scale") for group in groups]
        optimizer = factory(groups)
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] *= scale
        return optimizer

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        optimizer = self.build_optimizer()
        if not self.hparams["scheduler"]:
            return {"optimizer": optimizer}  # type: ignore[typeddict-item]
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total_steps / max(1, self.trainer.max_epochs or 1)
        scheduler = built_from(self.hparams["scheduler"], "scheduler")(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
