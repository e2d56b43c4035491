"""Turning probabilities into what a forager reads: top-k, "not sure", and the safety note.

Shared by ``mushroom.predict`` and the web service, so both answer the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mushroom.errors import MushroomError

WARNING = (
    "Never eat a wild mushroom because an app named it. Photos cannot show spore prints, smell or "
    "the base of the stem, and deadly species look like edible ones. Ask a local expert."
)
NOT_SURE = "not sure"


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
) -> dict[str, Any]:
    """The answer for one photo.

    ``prediction`` is the most likely class, or ``"not sure"`` when its probability is below
    ``abstain_threshold``. ``dangerous`` lists every class among the top k whose genus holds deadly or
    poisonous species, so that a deadly look-alike is named even when it is not the top answer.
    """
    ranked = top_k(probs, class_names, k)
    best = ranked[0]
    not_sure = abstain_threshold is not None and best["probability"] < abstain_threshold
    safety = safety or {}
    dangerous = [
        {"name": row["name"], "probability": row["probability"], **_danger(safety[row["name"]])}
        for row in ranked
        if _is_dangerous(safety.get(row["name"]))
    ]
    return {
        "prediction": NOT_SURE if not_sure else best["name"],
        "confidence": best["probability"],
        "not_sure": not_sure,
        "abstain_threshold": abstain_threshold,
        "top_k": ranked,
        "note": None if not_sure else (safety.get(best["name"]) or {}).get("note"),
        "dangerous": dangerous,
        "warning": WARNING,
    }


def _is_dangerous(entry: Mapping[str, Any] | None) -> bool:
    return bool(entry) and bool(entry.get("deadly") or entry.get("poisonous"))  # type: ignore[union-attr]


def _danger(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "deadly": bool(entry.get("deadly", False)),
        "poisonous": bool(entry.get("poisonous", False)),
        "note": entry.get("note"),
    }
