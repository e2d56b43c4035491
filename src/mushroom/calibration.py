"""Are the model's confidences honest? Expected calibration error, and temperature scaling to fix it.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the logits
by one scalar T fitted on the validation split: it changes no prediction, only how sure the model says
it is, which is what an abstain threshold and a forager reading "72%" rely on.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)

# A fitted temperature is clamped here: beyond, validation was too small or too easy to say anything.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# Below this many validation images the fitted temperature and threshold are noise, and training says so.
MIN_CALIBRATION_IMAGES = 50


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 that minimises the negative log-likelihood of ``softmax(logits / T)`` on ``labels``."""
    logits, labels = logits.detach().double(), labels.detach().long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(*TEMPERATURE_BOUNDS))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Images grouped by top-1 confidence into equal-width bins: count, mean confidence, accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high) if low > 0 else confidence <= high
        count = int(inside.sum())
        bins.append(
            {
                "low": float(low),
                "high": float(high),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Sum over bins of (share of images) x |accuracy - mean confidence|."""
    total = len(labels)
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(probs, labels, n_bins)
            if b["count"]
        )
    )


class CalibrateBestCheckpoint(L.Callback):
    """After fitting, fit on the validation split and store in the best checkpoint (which testing, export
    and every later use load): the temperature, the "not sure" threshold and the open-set threshold, and
    the deadly-risk rule (``deadly_risk``, set rather than fitted: :func:`mushroom.core.safety.confident`).

    The "not sure" threshold is the lowest confidence at which the dangerous-confusion rate on validation
    stays at most ``dangerous_target`` with the deadly-risk rule applied (only when ``deadly`` says which
    classes hold deadly species); the
    open-set threshold lets ``open_set_tpr`` of the validation photos through (``None``: none). With
    several processes, global rank 0 calibrates while the others wait, so every rank tests the same file.
    """

    def __init__(
        self,
        dangerous_target: float,
        open_set_tpr: float | None,
        deadly: Sequence[bool] | None,
        deadly_risk: float | None = None,
    ) -> None:
        self.dangerous_target = dangerous_target
        self.open_set_tpr = open_set_tpr
        self.deadly_risk = deadly_risk
        self.deadly = None if deadly is None else np.asarray(deadly, dtype=bool)
        self.fitted: dict[str, float] = {}

    @classmethod
    def from_config(cls, settings: Any, deadly: Sequence[bool] | None) -> CalibrateBestCheckpoint:
        """From a run's ``calibration`` config (``dangerous_target``, ``open_set_tpr``, ``deadly_risk``)."""
        return cls(
            settings.dangerous_target, settings.get("open_set_tpr"), deadly, settings.get("deadly_risk")
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from mushroom.checkpoints import best_checkpoint

        best = best_checkpoint(trainer)
        if best and trainer.is_global_zero:  # the other ranks build no loader: they only wait
            loader = trainer.datamodule.val_dataloader()  # type: ignore[attr-defined]
            if len(loader.dataset):
                self.fitted = self.calibrate(pl_module, loader, best)
        trainer.strategy.barrier("calibrated")

    def calibrate(self, model: Any, loader: Any, best: str) -> dict[str, float]:
        from mushroom.checkpoints import model_state, store_buffers
        from mushroom.inference import collect_logits, collect_scores

        model.load_state_dict(model_state(best))
        logits, labels = collect_logits(model, loader)
        model.temperature.fill_(fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)))
        probs, open_set, _ = collect_scores(model, loader)
        thresholds = fit_thresholds(
            probs, open_set, labels, self.deadly, self.dangerous_target, self.open_set_tpr, self.deadly_risk
        )
        for name, value in thresholds.items():
            getattr(model, name).fill_(value)
        fitted = ["temperature", "abstain_threshold", "open_set_threshold"]
        if "deadly_risk" in thresholds:
            fitted.append("deadly_risk")
        store_buffers(best, {name: getattr(model, name) for name in fitted})
        found = {name: float(getattr(model, name)) for name in fitted}
        log.info("Calibrated on %d validation images: %s (stored in %s)", len(labels), found, best)
        warn_about_calibration(len(labels), found["temperature"])
        return found


def fit_thresholds(
    probs: np.ndarray,
    open_set: np.ndarray,
    labels: np.ndarray,
    deadly: np.ndarray | None,
    dangerous_target: float | None,
    open_set_tpr: float | None,
    deadly_risk: float | None,
) -> dict[str, float]:
    """The thresholds fitted on validation photos' calibrated probabilities and open-set scores, by the
    rules of :class:`CalibrateBestCheckpoint`: the "not sure" threshold (and the deadly-risk rule it is
    fitted with) where ``deadly`` says which classes hold deadly species and ``dangerous_target`` is given,
    the open-set threshold where ``open_set_tpr`` is given. Only what the rules fit is returned, by the
    model buffer's name (training, an ensemble and :func:`mushroom.cv.refit` fit by this one function)."""
    from mushroom.core.open_set import fit_threshold
    from mushroom.core.safety import threshold_for_target

    fitted: dict[str, float] = {}
    if deadly is not None and dangerous_target is not None:
        deadly = np.asarray(deadly, dtype=bool)
        if deadly_risk is not None:
            fitted["deadly_risk"] = float(deadly_risk)
        fitted["abstain_threshold"] = threshold_for_target(
            probs, labels, deadly, dangerous_target, deadly_risk
        )
    if open_set_tpr is not None:
        fitted["open_set_threshold"] = fit_threshold(open_set[:, 0], open_set_tpr)
    return fitted


def warn_about_calibration(images: int, temperature: float) -> None:
    """Say when the fitted temperature and threshold cannot be trusted, instead of storing them silently."""
    if images < MIN_CALIBRATION_IMAGES:
        log.warning(
            "Calibration used only %d validation images (fewer than %d): the temperature and the 'not sure' "
            "threshold fitted on them are unreliable. Give validation more images (data.val_fraction), "
            "or pass abstain_threshold=... to predict and serve.",
            images,
            MIN_CALIBRATION_IMAGES,
        )
    if temperature <= TEMPERATURE_BOUNDS[0] * 1.001 or temperature >= TEMPERATURE_BOUNDS[1] * 0.999:
        log.warning(
            "The fitted temperature %.3g sits on its bound %s: validation is too small or too easy to "
            "calibrate on, so the probabilities are not calibrated.",
            temperature,
            TEMPERATURE_BOUNDS,
        )
