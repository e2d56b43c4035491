"""Turning probabilities into what a forager reads: top-k, "not sure", and the safety note.

Shared by ``mushroom.predict`` and the web service, so both answer the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mushroom.core.open_set import NOT_A_MUSHROOM, REASONS, UNKNOWN_GENUS, verdict
from mushroom.errors import MushroomError

SAFETY_WARNING = (
    "Never eat a wild mushroom because an app named it. Photos cannot show spore prints, smell or "
    "the base of the stem, and deadly species look like edible ones. Ask a local expert."
)
NOT_SURE = "not sure"
# What kind of answer a photo gets, for programs (the prediction says it in words).
VERDICTS = {NOT_SURE: "not_sure", NOT_A_MUSHROOM: "not_a_mushroom", UNKNOWN_GENUS: "unknown_genus"}


def chosen_threshold(
    override: float | None, stored: float | None, key: str = "abstain_threshold"
) -> float | None:
    """The "not sure" threshold to answer with: ``override`` when given, else the one fitted on validation
    and stored in the model (``None``: never "not sure"). An override outside [0, 1] is refused by name."""
    if override is None:
        return stored
    if isinstance(override, bool) or not isinstance(override, (int, float)) or not 0.0 <= override <= 1.0:
        raise MushroomError(
            f"{key}={override}: a confidence threshold is a probability between 0 and 1 "
            f"(e.g. {key}=0.5), or null for the threshold fitted on validation."
        )
    return float(override)


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"name": class_names[i], "probability": round(float(probs[i]), 6)} for i in order]


def answer(
    probs: np.ndarray,
    class_names: Sequence[str],
    k: int = 3,
    abstain_threshold: float | None = None,
    safety: Mapping[str, Any] | None = None,
    open_set: np.ndarray | None = None,
    open_set_threshold: float | None = None,
) -> dict[str, Any]:
    """The answer for one photo.

    ``prediction`` is ``"not a mushroom"`` or ``"not a genus I know"`` when the photo's known score
    (``open_set[0]``, :mod:`mushroom.core.open_set`) is below ``open_set_threshold``; else ``"not sure"``
    when the most likely class's probability is below ``abstain_threshold``; else that class.
    ``verdict`` says which, ``reason`` why. ``dangerous`` lists every class among the top k whose genus
    holds deadly or poisonous species, so that a deadly look-alike is named even when it is not the top
    answer.
    """
    ranked = top_k(probs, class_names, k)
    best = ranked[0]
    known_score, rejected = None, None
    if open_set is None:
        open_set_threshold = None  # a model without open-set scores cannot apply the threshold
    else:
        known_score = float(open_set[0])
        rejected = verdict(known_score, float(open_set[1]), open_set_threshold)
    not_sure = rejected is None and abstain_threshold is not None and best["probability"] < abstain_threshold
    prediction = rejected or (NOT_SURE if not_sure else best["name"])
    reason = REASONS.get(prediction)
    if not_sure:
        reason = (
            f"{best['name']} is the most likely genus, but at {best['probability']:.0%} the model is not "
            f"confident enough (it answers from {abstain_threshold:.0%})."
        )
    safety = safety or {}
    dangerous = [
        {"name": row["name"], "probability": row["probability"], **_danger(safety[row["name"]])}
        for row in ranked
        if _is_dangerous(safety.get(row["name"]))
    ]
    return {
        "prediction": prediction,
        "verdict": VERDICTS.get(prediction, "genus"),
        "reason": reason,
        "confidence": best["probability"],
        "not_sure": not_sure,
        "abstain_threshold": abstain_threshold,
        "known_score": round(known_score, 6) if known_score is not None else None,
        "open_set_threshold": open_set_threshold,
        "top_k": ranked,
        "note": (safety.get(best["name"]) or {}).get("note") if prediction == best["name"] else None,
        "dangerous": dangerous,
        "warning": SAFETY_WARNING,
    }


def _is_dangerous(entry: Mapping[str, Any] | None) -> bool:
    return bool(entry) and bool(entry.get("deadly") or entry.get("poisonous"))  # type: ignore[union-attr]


def _danger(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "deadly": bool(entry.get("deadly", False)),
        "poisonous": bool(entry.get("poisonous", False)),
        "note": entry.get("note"),
    }
