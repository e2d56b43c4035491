"""Are the model's confidences honest? Expected calibration error, and temperature scaling to fix it.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the logits
by one scalar T fitted on the validation split: it changes no prediction, only how sure the model says
it is, which is what an abstain threshold and a forager reading "72%" rely on.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.nn import functional as F

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
