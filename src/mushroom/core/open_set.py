"""Open-set answers: "not a mushroom" and "a mushroom, but not a genus this model knows".

A closed-set classifier names one of its genera for any photo, a cat's included. Here every photo also
gets a *known score* (higher: more like the genera it was trained on) and, when the model was trained
with negative photos (outlier exposure, Hendrycks et al., 2019, "Deep Anomaly Detection with Outlier
Exposure"), the share of its doubt that says "not a mushroom" rather than "another genus":

- trained with negatives, the network has two extra outputs, *other genus* and *not a mushroom*; the
  known score is the softmax mass on the genera, the share is ``p(not a mushroom) / p(either)``;
- trained without, the known score is the energy ``logsumexp(logits)`` (Liu et al., 2020, "Energy-based
  Out-of-distribution Detection"), and a photo below the threshold is "not a genus I know", whatever it is.

The threshold is fitted on validation photos of the known genera (a share ``tpr`` of them pass) and
stored with the model, like the temperature. Pure NumPy: the service imports it without PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mushroom.core.safety import confident

NOT_A_MUSHROOM = "not a mushroom"
UNKNOWN_GENUS = "not a genus I know"
# The kinds of negative photo, in the order of the network's extra outputs after the genera.
NEGATIVE_KINDS = ("other_genus", "not_mushroom")
VERDICT_OF_KIND = {"other_genus": UNKNOWN_GENUS, "not_mushroom": NOT_A_MUSHROOM}
REASONS = {
    NOT_A_MUSHROOM: "The photo looks less like a mushroom than like the non-mushroom photos the model "
    "was shown.",
    UNKNOWN_GENUS: "The photo is unlike the photos of the genera this model knows: it may be another "
    "genus, or not a mushroom.",
}


def fit_threshold(known_scores: np.ndarray, tpr: float) -> float:
    """The highest known score that at least a share ``tpr`` of these (validation) photos of known genera
    reach: the threshold that accepts them."""
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr={tpr}: the share of known photos to accept is in (0, 1].")
    ordered = np.sort(known_scores)
    accepted = math.ceil(tpr * len(ordered) - 1e-9)
    return float(ordered[len(ordered) - accepted])


def verdict(known_score: float, not_mushroom_share: float, threshold: float | None) -> str | None:
    """``None`` when the photo passes as one of the known genera, else which open-set answer it gets."""
    if threshold is None or known_score >= threshold:
        return None
    return NOT_A_MUSHROOM if not_mushroom_share > 0.5 else UNKNOWN_GENUS


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Probability that a known photo scores above an unknown one (ties count half): the Mann-Whitney U."""
    known, unknown = np.asarray(known)[:, None], np.asarray(unknown)[None, :]
    if not known.size or not unknown.size:
        return float("nan")
    return float((known > unknown).mean() + 0.5 * (known == unknown).mean())


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = 0.95) -> float:
    """Share of unknown photos accepted at the threshold that accepts ``tpr`` of the known ones."""
    if not len(known) or not len(unknown):
        return float("nan")
    return float((np.asarray(unknown) >= fit_threshold(known, tpr)).mean())


def answered_with_genus(
    probs: np.ndarray,
    open_set: np.ndarray,
    abstain_threshold: float | None,
    open_set_threshold: float | None,
    deadly: np.ndarray | None = None,
    deadly_risk: float | None = None,
) -> np.ndarray:
    """Per photo: is the answer a genus (neither open-set rejected nor "not sure")?"""
    answered = confident(probs, abstain_threshold, deadly, deadly_risk)
    if open_set_threshold is not None:
        answered &= open_set[:, 0] >= open_set_threshold
    return answered


def open_set_view(
    known: tuple[np.ndarray, np.ndarray],
    negatives: Mapping[str, tuple[np.ndarray, np.ndarray]],
    abstain_threshold: float | None,
    open_set_threshold: float | None,
    deadly: np.ndarray | None = None,
    deadly_risk: float | None = None,
) -> dict[str, Any]:
    """The open-set part of a report, from ``(probs, open_set)`` of the known photos and of each folder
    of negatives: per folder, AUROC and FPR at 95% TPR of the known score against the known photos, and
    the share answered with a genus at the operating point (every threshold applied); also how often
    the known photos get a genus, and which open-set answer the negatives get."""
    known_scores = known[1][:, 0]
    folders = {}
    rule = (deadly, deadly_risk)
    for name, (probs, open_set) in negatives.items():
        answered = answered_with_genus(probs, open_set, abstain_threshold, open_set_threshold, *rule)
        said = [verdict(float(s), float(m), open_set_threshold) for s, m in open_set]
        folders[name] = {
            "images": len(probs),
            "auroc": auroc(known_scores, open_set[:, 0]),
            "fpr_at_95_tpr": fpr_at_tpr(known_scores, open_set[:, 0], 0.95),
            "answered_with_genus": float(answered.mean()) if len(probs) else None,
            "said_not_a_mushroom": float(np.mean([v == NOT_A_MUSHROOM for v in said])) if said else None,
            "said_unknown_genus": float(np.mean([v == UNKNOWN_GENUS for v in said])) if said else None,
        }
    known_answered = answered_with_genus(*known, abstain_threshold, open_set_threshold, *rule)
    return {
        "threshold": open_set_threshold,
        "known_images": len(known_scores),
        "known_answered_with_genus": float(known_answered.mean()) if len(known_scores) else None,
        "known_rejected_open_set": float(np.mean(~answered_with_genus(*known, None, open_set_threshold)))
        if len(known_scores)
        else None,
        "folders": folders,
    }
